#include "circuit/graph.h"

#include "error.h"

namespace neuroprune::circuit {

Graph build_graph(const CausalLM& model) {
  const ModelInfo& info = model.info();
  if (info.recurrent || info.n_heads <= 0)
    fail(codes::kSite, info.model_type + " (" + info.architecture +
                           ") has no attention heads, so it has no circuit graph (circuits need heads and MLPs)");
  Graph g;
  g.n_layers = info.n_layers;
  g.n_heads = info.n_heads;
  g.d_model = info.d_model;
  g.parallel = model.graph_parallel();
  const int64_t L = g.n_layers, H = g.n_heads;
  g.writers.push_back("input");
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t h = 0; h < H; ++h) g.writers.push_back("a" + std::to_string(l) + ".h" + std::to_string(h));
    g.writers.push_back("m" + std::to_string(l));
  }
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t h = 0; h < H; ++h)
      for (const char* j : {"<q>", "<k>", "<v>"}) g.readers.push_back("a" + std::to_string(l) + ".h" + std::to_string(h) + j);
    g.readers.push_back("m" + std::to_string(l));
  }
  g.readers.push_back("logits");
  g.edges = at::zeros({g.n_writers(), g.n_readers()}, at::kBool);
  for (int64_t l = 0; l < L; ++l) {
    g.edges.narrow(0, 0, g.writers_before_attn(l)).narrow(1, g.attn_reader(l, 0, 0), 3 * H).fill_(true);
    g.edges.narrow(0, 0, g.writers_before_mlp(l)).narrow(1, g.mlp_reader(l), 1).fill_(true);
  }
  g.edges.narrow(1, g.logits_reader(), 1).fill_(true);
  return g;
}

at::Tensor graph_embed(const CausalLM& model, const at::Tensor& ids) {
  const at::Tensor pos = at::arange(ids.size(1), ids.options().dtype(at::kLong)).unsqueeze(0).expand({ids.size(0), ids.size(1)});
  return model.embed(ids, pos);
}

void check_ids(const CausalLM& model, const at::Tensor& ids, const std::string& what) {
  const ModelInfo& info = model.info();
  if (ids.dim() != 2 || ids.size(0) < 1 || ids.size(1) < 1) fail(codes::kArgument, what + " must hold at least one row of at least one token");
  if (info.max_positions > 0 && ids.size(1) > info.max_positions)
    fail(codes::kRange, what + ": rows of " + std::to_string(ids.size(1)) + " tokens are longer than the model's context of " +
                            std::to_string(info.max_positions));
  const at::Tensor c = ids.to(at::kCPU, at::kLong).contiguous();
  const int64_t* p = c.data_ptr<int64_t>();
  const int64_t T = c.size(1);
  for (int64_t i = 0; i < c.numel(); ++i)
    if (p[i] < 0 || p[i] >= info.vocab_size)
      fail(codes::kRange, what + "[" + std::to_string(i / T) + "][" + std::to_string(i % T) + "] = " + std::to_string(p[i]) +
                              ": token id outside the vocabulary [0, " + std::to_string(info.vocab_size) + ")");
}

at::Tensor stack_writers(const std::vector<at::Tensor>& groups) { return at::cat(groups, 2); }

at::Tensor graph_forward(const CausalLM& model, const Graph& g, const at::Tensor& embeddings, const GraphForward& run) {
  const int64_t B = embeddings.size(0), T = embeddings.size(1), d = embeddings.size(2), H = g.n_heads;
  const at::Tensor positions = at::arange(T, embeddings.options().dtype(at::kLong)).unsqueeze(0).expand({B, T});
  std::vector<at::Tensor> z;              // writer groups' outputs [B, T, n, d] in this run
  std::vector<at::Tensor> delta(g.n_groups());  // z~ - z per group, made when first needed
  const bool ablating = run.ablated.defined();

  // Reader inputs [B, T, n, d] for readers r0 .. r0 + n: the stream plus, per ablated edge from one of
  // the first `writers` writers, z~_u - z_u:  in_v = x + sum_u A[u, v] (z~_u - z_u).
  auto readers_input = [&](const at::Tensor& x, int64_t r0, int64_t n, int64_t writers) {
    at::Tensor in = x.unsqueeze(2).expand({B, T, n, d});
    if (!ablating) return in;
    for (int64_t grp = 0; grp < static_cast<int64_t>(z.size()); ++grp) {
      const int64_t w0 = g.first_writer(grp), nw = g.group_size(grp);
      if (w0 + nw > writers) break;
      if (!run.ablated_cpu.narrow(-2, w0, nw).narrow(-1, r0, n).any().item<bool>()) continue;
      if (!delta[grp].defined()) delta[grp] = run.values[grp] - z[grp];
      const at::Tensor a = run.ablated.narrow(-2, w0, nw).narrow(-1, r0, n);
      in = in + at::einsum(a.dim() == 3 ? "btwd,bwr->btrd" : "btwd,wr->btrd", {delta[grp], a});
    }
    return in;
  };
  auto seen = [&](int64_t first, const at::Tensor& inputs) {
    if (run.on_inputs) run.on_inputs(first, inputs);
  };

  // Outputs are kept only where something reads them: the ablation, or the caller.
  const bool keep = ablating || run.record;
  at::Tensor x = embeddings;
  if (keep) z.push_back(embeddings.unsqueeze(2));
  for (int64_t l = 0; l < g.n_layers; ++l) {
    if (run.poll) run.poll();
    // Attention: head h reads q, k, v inputs of its own; the heads' outputs and the bias join the stream.
    const at::Tensor a_in = readers_input(x, g.attn_reader(l, 0, 0), 3 * H, g.writers_before_attn(l));
    seen(g.attn_reader(l, 0, 0), a_in);
    const at::Tensor qkv = a_in.unflatten(2, {H, 3});  // [B, T, H, 3, d]
    const at::Tensor heads = model.graph_heads(l, qkv.select(3, 0), qkv.select(3, 1), qkv.select(3, 2), positions);
    if (keep) z.push_back(heads);
    at::Tensor attn = heads.sum(2);
    const at::Tensor bias = model.graph_attn_bias(l);
    if (bias.defined()) attn = attn + bias;
    const at::Tensor resid = x + attn;
    // MLP: reads the stream after the heads (or, parallel residual, the one attention read).
    const at::Tensor m_in = readers_input(g.parallel ? x : resid, g.mlp_reader(l), 1, g.writers_before_mlp(l));
    seen(g.mlp_reader(l), m_in);
    const at::Tensor mlp = model.graph_mlp(l, m_in.squeeze(2));
    if (keep) z.push_back(mlp.unsqueeze(2));
    x = resid + mlp;
  }
  at::Tensor out = readers_input(x, g.logits_reader(), 1, g.n_writers());
  seen(g.logits_reader(), out);
  out = out.squeeze(2);
  if (run.last_only) out = out.narrow(1, T - 1, 1);
  if (run.record) *run.record = std::move(z);
  return model.head(out);
}

}  // namespace neuroprune::circuit
