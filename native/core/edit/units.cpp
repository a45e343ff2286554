#include "edit/units.h"

#include <cmath>
#include <map>

#include "error.h"

namespace neuroprune {

static bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Where dimension d of the residual stream lives in a weight, by its HF name; -1 = not a writer.
// Embeddings [vocab or positions, hidden]: column d. nn.Linear writers [hidden, in]: row d. GPT-2's
// Conv1D writers [in, hidden]: column d. Writer biases [hidden]: entry d.
static int64_t resid_dim(const std::string& name) {
  for (const char* t : {"embed_tokens.weight", "wte.weight", "wpe.weight", "embed_in.weight", "embeddings.weight"})
    if (ends_with(name, t)) return 1;
  for (const char* t : {"attn.c_proj.weight", "mlp.c_proj.weight"})
    if (ends_with(name, t)) return 1;
  for (const char* t : {"attn.c_proj.bias", "mlp.c_proj.bias"})
    if (ends_with(name, t)) return 0;
  for (const char* t : {"self_attn.o_proj.", "mlp.down_proj.", "attention.dense.", "mlp.dense_4h_to_h.", "mixer.out_proj."})
    if (ends_with(name, std::string(t) + "weight") || ends_with(name, std::string(t) + "bias")) return 0;
  return -1;
}

std::vector<Slice> unit_slices(CausalLM& model, UnitKind kind, const std::vector<Neuron>& units, bool inputs) {
  const ModelInfo& info = model.info();
  std::vector<Slice> out;
  if (kind == UnitKind::Mlp) {
    std::map<int64_t, std::vector<int64_t>> per_layer;
    for (size_t i = 0; i < units.size(); ++i) {
      const auto [layer, index] = units[i];
      if (layer < 0 || layer >= info.n_layers || index < 0 || index >= info.d_mlp)
        fail(codes::kRange, "units[" + std::to_string(i) + "] = {layer: " + std::to_string(layer) + ", index: " + std::to_string(index) +
                                "} is outside [0, " + std::to_string(info.n_layers) + ") x [0, " + std::to_string(info.d_mlp) + ")");
      per_layer[layer].push_back(index);
    }
    for (auto& [layer, idx] : per_layer) {
      const at::Tensor index = at::tensor(idx, at::kLong).to(model.layer_device(layer));
      for (const auto& p : model.neuron_params(layer, inputs)) out.push_back({p.name, p.dim, p.offset ? index + p.offset : index});
    }
    return out;
  }
  std::vector<int64_t> dims;
  for (size_t i = 0; i < units.size(); ++i) {
    if (units[i].index < 0 || units[i].index >= info.d_model)
      fail(codes::kRange, "units[" + std::to_string(i) + "]: residual dimension " + std::to_string(units[i].index) + " is outside [0, " +
                              std::to_string(info.d_model) + ")");
    dims.push_back(units[i].index);
  }
  if (dims.empty()) return out;
  const at::Tensor index = at::tensor(dims, at::kLong).to(model.device());
  for (const auto& [name, w] : model.mutable_weights().named()) {
    const int64_t dim = resid_dim(name);
    if (dim >= 0 && dim < w.dim() && w.size(dim) == info.d_model) out.push_back({name, dim, index});
  }
  return out;
}

std::vector<double> unit_output_norms(CausalLM& model, UnitKind kind, const std::vector<Neuron>& units) {
  std::vector<double> out;
  for (const auto& unit : units) {
    double sq = 0;
    for (const auto& s : unit_slices(model, kind, {unit}, false))
      sq += model.mutable_weights()[s.name].index_select(s.dim, s.index.to(model.mutable_weights()[s.name].device())).to(at::kFloat).pow(2).sum().item<double>();
    out.push_back(std::sqrt(sq));
  }
  return out;
}

void zero_slices(CausalLM& model, const std::vector<Slice>& slices) {
  for (const auto& s : slices) {
    const at::Tensor& w = model.mutable_weights()[s.name];
    w.index_fill_(s.dim, s.index.to(w.device()), 0);  // residual units span every layer's device
  }
}

}  // namespace neuroprune
