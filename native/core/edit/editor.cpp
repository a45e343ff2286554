#include "edit/editor.h"

#include <map>
#include <set>

#include "error.h"

namespace neuroprune {

void Editor::check(const std::vector<Neuron>& neurons) const {
  const ModelInfo& info = model_.info();
  std::map<std::pair<int64_t, int64_t>, size_t> seen;
  for (size_t i = 0; i < neurons.size(); ++i) {
    const auto [layer, index] = neurons[i];
    const std::string entry = "neurons[" + std::to_string(i) + "] = {layer: " + std::to_string(layer) +
                              ", index: " + std::to_string(index) + "}";
    if (layer < 0 || layer >= info.n_layers)
      fail(codes::kRange, entry + ": layer out of range [0, " + std::to_string(info.n_layers) + ")");
    if (index < 0 || index >= info.d_mlp)
      fail(codes::kRange, entry + ": index out of range [0, " + std::to_string(info.d_mlp) + ") of blocks." +
                              std::to_string(layer) + "." + info.neuron_site);
    auto [it, fresh] = seen.emplace(std::make_pair(layer, index), i);
    if (!fresh) fail(codes::kRange, entry + ": duplicate of neurons[" + std::to_string(it->second) + "]");
  }
}

// Neuron indices per layer, as index tensors on the model's device.
static std::map<int64_t, at::Tensor> by_layer(const std::vector<Neuron>& neurons, at::Device device) {
  std::map<int64_t, std::vector<int64_t>> lists;
  for (const auto& n : neurons) lists[n.layer].push_back(n.index);
  std::map<int64_t, at::Tensor> out;
  for (auto& [layer, idx] : lists) out[layer] = at::tensor(idx, at::kLong).to(device);
  return out;
}

void Editor::apply(Edit& edit) {
  if (!edit.prune) return rebuild_scales();
  edit.saved.clear();
  for (auto& [layer, index] : by_layer(edit.neurons, model_.device())) {
    for (const auto& param : model_.neuron_params(layer, edit.full)) {
      const at::Tensor& w = model_.mutable_weights()[param.name];
      const at::Tensor slices = (param.offset ? index + param.offset : index).to(w.device());  // device map: the layer's device
      edit.saved.push_back({param.name, param.dim, slices, w.index_select(param.dim, slices)});
      w.index_fill_(param.dim, slices, 0);
    }
  }
}

void Editor::undo(Edit& edit) {
  if (!edit.prune) return;
  for (auto it = edit.saved.rbegin(); it != edit.saved.rend(); ++it)
    model_.mutable_weights()[it->name].index_copy_(it->dim, it->index, it->values);
  edit.saved.clear();
}

void Editor::rebuild_scales() {
  const ModelInfo& info = model_.info();
  // [site][last_only][layer]: the product of every scale edit's factors, ones elsewhere.
  std::vector<at::Tensor> scales[2][2];
  for (auto& per_site : scales)
    for (auto& per_positions : per_site) per_positions.resize(info.n_layers);
  for (const auto& edit : edits_) {
    if (edit.prune) continue;
    auto& layers = scales[static_cast<int>(edit.site)][edit.last_only ? 1 : 0];
    for (const auto& n : edit.neurons) {
      if (!layers[n.layer].defined()) layers[n.layer] = at::ones({info.d_mlp}, at::kFloat);
      layers[n.layer][n.index] *= edit.factor;
    }
  }
  for (int site = 0; site < 2; ++site)
    for (int64_t l = 0; l < info.n_layers; ++l) model_.set_mlp_scale(l, static_cast<MlpSite>(site), scales[site][0][l], scales[site][1][l]);
}

int64_t Editor::prune(const std::vector<Neuron>& neurons, bool full) {
  check(neurons);
  edits_.push_back({next_id_++, true, full, 0.0, MlpSite::Post, false, neurons, {}});
  apply(edits_.back());
  return edits_.back().id;
}

int64_t Editor::scale(const std::vector<Neuron>& neurons, double factor, MlpSite site, bool last_only) {
  check(neurons);
  if (site == MlpSite::Pre && !model_.info().has_pre_site)
    fail(codes::kArgument, model_.info().model_type + " has no mlp.hook_pre site (its neurons sit at " + model_.info().neuron_site + ")");
  edits_.push_back({next_id_++, false, false, factor, site, last_only, neurons, {}});
  rebuild_scales();
  return edits_.back().id;
}

void Editor::remove(int64_t handle) {
  size_t k = 0;
  while (k < edits_.size() && edits_[k].id != handle) ++k;
  if (k == edits_.size()) fail(codes::kArgument, "no edit with handle " + std::to_string(handle) + " (already restored?)");
  // Later edits saved slices that may include this edit's zeros: undo them newest first, drop this
  // one, then apply them again.
  for (size_t i = edits_.size(); i-- > k;) undo(edits_[i]);
  edits_.erase(edits_.begin() + k);
  for (size_t i = k; i < edits_.size(); ++i) apply(edits_[i]);
  rebuild_scales();
}

void Editor::remove_all() {
  for (size_t i = edits_.size(); i-- > 0;) undo(edits_[i]);
  edits_.clear();
  rebuild_scales();
}

}  // namespace neuroprune
