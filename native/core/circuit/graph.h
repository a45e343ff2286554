// The model as a circuit graph (Hanna et al. 2024, Conmy et al. 2023): writers put their output into
// the residual stream, readers take their input from it, and an edge u->v exists when u writes
// before v reads.
//   writers: input (token + position embeddings), then per layer l: a{l}.h{h} (each query head's
//            output z_h W_O[:, h], without the output bias, which stays in the stream), m{l} (the MLP)
//   readers: per layer l: a{l}.h{h}<q>, <k>, <v> per query head, then m{l}; finally logits
// Heads of layer l read input and every writer of layers < l; m{l} also reads layer l's heads, except
// with a parallel residual (GPT-NeoX), where it reads the stream its attention reads.
//
// The graph forward with ablated edges: reader v's input is the stream of this run at v plus, for each
// ablated edge u->v, z~_u - z_u (z_u: u's output in this run; z~_u: its ablation value: its output on
// a corrupted input, its mean over rows, or zero). Each reader then applies its own norm and
// computation; with no edge ablated this is CausalLM::forward.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <vector>

#include "models/model.h"

namespace neuroprune::circuit {

struct Graph {
  int64_t n_layers = 0, n_heads = 0, d_model = 0;
  bool parallel = false;
  std::vector<std::string> writers, readers;
  at::Tensor edges;  // [W, R] bool on CPU: 1 where u writes before v reads

  int64_t n_writers() const { return static_cast<int64_t>(writers.size()); }
  int64_t n_readers() const { return static_cast<int64_t>(readers.size()); }
  int64_t head_writer(int64_t l, int64_t h) const { return 1 + l * (n_heads + 1) + h; }
  int64_t mlp_writer(int64_t l) const { return 1 + l * (n_heads + 1) + n_heads; }
  // j: 0 = q, 1 = k, 2 = v
  int64_t attn_reader(int64_t l, int64_t h, int64_t j) const { return l * (3 * n_heads + 1) + 3 * h + j; }
  int64_t mlp_reader(int64_t l) const { return l * (3 * n_heads + 1) + 3 * n_heads; }
  int64_t logits_reader() const { return n_layers * (3 * n_heads + 1); }
  // How many writers (a prefix of the writer order) layer l's attention and MLP read.
  int64_t writers_before_attn(int64_t l) const { return 1 + l * (n_heads + 1); }
  int64_t writers_before_mlp(int64_t l) const { return writers_before_attn(l) + (parallel ? 0 : n_heads); }
  // Writer groups, the unit outputs are kept in: 0 = input [B, T, 1, d]; 1 + 2l = layer l's heads
  // [B, T, H, d]; 2 + 2l = layer l's MLP [B, T, 1, d]. first_writer(g) is the group's first writer.
  int64_t n_groups() const { return 1 + 2 * n_layers; }
  int64_t first_writer(int64_t g) const { return g == 0 ? 0 : (g % 2 ? head_writer((g - 1) / 2, 0) : mlp_writer((g - 2) / 2)); }
  int64_t group_size(int64_t g) const { return g == 0 || g % 2 == 0 ? 1 : n_heads; }
};

// The graph of a model; E_SITE for models without attention heads (Mamba).
Graph build_graph(const CausalLM& model);

// How one graph forward runs.
struct GraphForward {
  // Ablated edges [W, R], or per row [B, W, R] (1 = ablated), in the model's dtype on its device, and
  // the same on CPU as bool (to skip blocks without an ablated edge; per row: any row's); undefined:
  // nothing ablated.
  at::Tensor ablated, ablated_cpu;
  // z~ per writer group, shaped like the group's output with batch B or 1 (a mean over rows).
  std::vector<at::Tensor> values;
  // Out: each writer group's output in this run.
  std::vector<at::Tensor>* record = nullptr;
  // Sees each layer's reader inputs as they are made: the first reader's index and the inputs
  // [B, T, n, d] of readers first .. first + n (attention: 3H in reader order; MLP, logits: 1), so
  // that a caller can hook their gradients.
  std::function<void(int64_t first, const at::Tensor& inputs)> on_inputs;
  std::function<void()> poll;  // called once per layer (cancellation)
  bool last_only = true;       // logits at the last position only
};

// embeddings [B, T, d] (the writer `input`; every position a real token) -> logits [B, T or 1, vocab].
at::Tensor graph_forward(const CausalLM& model, const Graph& graph, const at::Tensor& embeddings, const GraphForward& run);

// Token and position embeddings of ids [B, T] (all real tokens).
at::Tensor graph_embed(const CausalLM& model, const at::Tensor& ids);

// Checks token rows ids [N, T] (int64, CPU): N, T >= 1, ids inside the vocabulary (E_RANGE names `what`,
// the row and position), T within the model's context.
void check_ids(const CausalLM& model, const at::Tensor& ids, const std::string& what);

// The writer groups' outputs stacked [B, T, W, d] in writer order.
at::Tensor stack_writers(const std::vector<at::Tensor>& groups);

}  // namespace neuroprune::circuit
