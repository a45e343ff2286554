#include "train/trainer.h"

#include <ATen/core/grad_mode.h>  // at::NoGradGuard, at::AutoGradMode (not in ATen.h on 2.x)

#include <cmath>

#include "checkpoint/safetensors.h"
#include "error.h"

namespace neuroprune {

Trainer::Trainer(CausalLM& model, TrainConfig config) : model_(model), config_(config) {
  if (config_.total_steps < 1) fail(codes::kArgument, "training needs at least one step");
  if (config_.lr <= 0) fail(codes::kArgument, "learning rate must be positive");
  if (config_.start_step < 0) fail(codes::kArgument, "start step must not be negative");
  step_ = config_.start_step;
  for (const auto& [name, t] : model_.mutable_weights().named()) {
    at::Tensor p = t;
    p.requires_grad_(true);
    params_.push_back(p);
    master_.push_back(p.scalar_type() == at::kFloat ? p : p.detach().to(at::kFloat));
    m_.push_back(at::zeros_like(master_.back()));
    v_.push_back(at::zeros_like(master_.back()));
    decay_.push_back(p.dim() >= 2);  // no decay on biases and norm gains
  }
}

Trainer::~Trainer() {
  for (auto& p : params_) {
    p.mutable_grad() = at::Tensor();
    p.requires_grad_(false);
  }
}

void Trainer::freeze(std::vector<Slice> slices) {
  const auto& named = model_.mutable_weights().named();
  for (auto& s : slices) {
    size_t i = 0;
    while (i < named.size() && named[i].first != s.name) ++i;
    if (i == named.size()) fail(codes::kArgument, "cannot freeze " + s.name + ": no such weight");
    frozen_.emplace_back(i, std::move(s));
  }
  at::NoGradGuard no_grad;
  for (auto& [i, s] : frozen_) {
    master_[i].index_fill_(s.dim, s.index, 0);
    if (master_[i].data_ptr() != params_[i].data_ptr()) params_[i].index_fill_(s.dim, s.index, 0);
  }
}

double Trainer::lr_at(int64_t step) const {
  if (step < config_.warmup_steps) return config_.lr * double(step + 1) / double(config_.warmup_steps);
  const double progress = std::min(1.0, double(step - config_.warmup_steps) / double(std::max<int64_t>(1, config_.total_steps - config_.warmup_steps)));
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return config_.lr * (config_.min_lr_ratio + (1.0 - config_.min_lr_ratio) * cosine);
}

void Trainer::save_state(const std::string& path, bool weights) const {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  const auto& named = model_.mutable_weights().named();
  for (size_t i = 0; i < params_.size(); ++i) {
    tensors.emplace_back("m." + named[i].first, m_[i]);
    tensors.emplace_back("v." + named[i].first, v_[i]);
    if (weights || master_[i].data_ptr() != params_[i].data_ptr()) tensors.emplace_back("master." + named[i].first, master_[i]);
  }
  write_safetensors(path, tensors, {{"format", "neuroprune-adamw"}, {"step", std::to_string(step_)}, {"adam_t", std::to_string(adam_t_)}});
}

void Trainer::load_state(const std::string& path) {
  SafetensorsFile file(path);
  const auto& meta = file.metadata();
  auto number = [&](const char* key) -> int64_t {
    auto it = meta.find(key);
    if (meta.count("format") == 0 || meta.at("format") != "neuroprune-adamw" || it == meta.end())
      fail(codes::kArgument, path + ": not an optimizer state written by neuroprune");
    return std::stoll(it->second);
  };
  const int64_t step = number("step"), adam_t = number("adam_t");
  if (step != config_.start_step)
    fail(codes::kArgument, path + ": optimizer state is at step " + std::to_string(step) + ", training starts at step " + std::to_string(config_.start_step));
  const auto& named = model_.mutable_weights().named();
  size_t expected = 0;
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    const bool low = master_[i].data_ptr() != params_[i].data_ptr();
    for (const char* part : {"m.", "v.", "master."}) {
      // float32 models share master and weights: "master." is there only when the weights were saved.
      if (std::string(part) == "master." && !low && !file.has(part + named[i].first)) continue;
      const std::string key = part + named[i].first;
      if (!file.has(key)) fail(codes::kArgument, path + ": optimizer state lacks " + key + " (another model?)");
      at::Tensor t = file.load(key, master_[i].device(), at::kFloat);
      if (!t.sizes().equals(master_[i].sizes())) fail(codes::kArgument, path + ": " + key + " has another shape than the model's weight");
      (part[0] == 'm' && part[1] == '.' ? m_[i] : part[0] == 'v' ? v_[i] : master_[i]).copy_(t);
      ++expected;
    }
    if (low) params_[i].copy_(master_[i]);
  }
  if (file.entries().size() != expected) fail(codes::kArgument, path + ": optimizer state has tensors this model lacks (another model?)");
  adam_t_ = adam_t;
  for (auto& [i, s] : frozen_) {
    master_[i].index_fill_(s.dim, s.index, 0);
    if (master_[i].data_ptr() != params_[i].data_ptr()) params_[i].index_fill_(s.dim, s.index, 0);
  }
}

StepStats Trainer::step(const at::Tensor& ids, const at::Tensor& mask) {
  at::AutoGradMode grad(true);
  const int64_t T = ids.size(1);
  if (T < 2) fail(codes::kArgument, "training sequences need at least two tokens");
  // Cross-entropy of token t+1 given tokens <= t, averaged over real target tokens.
  const at::Tensor logits = model_.forward(ids, mask, nullptr).narrow(1, 0, T - 1).to(at::kFloat);
  const at::Tensor targets = ids.narrow(1, 1, T - 1);
  const at::Tensor weight = mask.narrow(1, 1, T - 1).logical_and(mask.narrow(1, 0, T - 1)).to(at::kFloat);
  const at::Tensor nll = -at::log_softmax(logits, -1).gather(2, targets.unsqueeze(-1)).squeeze(-1);
  const double count = weight.sum().item<double>();
  if (count == 0) fail(codes::kArgument, "batch has no target tokens");
  const at::Tensor loss = (nll * weight).sum() / count;
  for (auto& p : params_) p.mutable_grad() = at::Tensor();
  loss.backward();

  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  at::Tensor sq = at::zeros({}, at::TensorOptions().device(model_.device()).dtype(at::kFloat));
  for (auto& p : params_) {
    grads.push_back(p.grad().defined() ? p.grad().to(at::kFloat) : at::zeros_like(master_[grads.size()]));
  }
  for (auto& [i, s] : frozen_) grads[i].index_fill_(s.dim, s.index, 0);
  for (const auto& g : grads) sq = sq + g.pow(2).sum();
  const double norm = std::sqrt(sq.item<double>());
  const double clip = config_.grad_clip > 0 && norm > config_.grad_clip ? config_.grad_clip / (norm + 1e-6) : 1.0;
  const double lr = lr_at(step_);
  ++step_;
  ++adam_t_;
  const double bc1 = 1.0 - std::pow(config_.beta1, double(adam_t_)), bc2 = 1.0 - std::pow(config_.beta2, double(adam_t_));
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor g = grads[i] * clip;
    m_[i].mul_(config_.beta1).add_(g, 1.0 - config_.beta1);         // m = b1 m + (1-b1) g
    v_[i].mul_(config_.beta2).addcmul_(g, g, 1.0 - config_.beta2);  // v = b2 v + (1-b2) g^2
    if (decay_[i]) master_[i].mul_(1.0 - lr * config_.weight_decay);
    master_[i].addcdiv_(m_[i] / bc1, (v_[i] / bc2).sqrt_().add_(config_.eps), -lr);  // p -= lr m^ / (sqrt(v^) + eps)
    if (master_[i].data_ptr() != params_[i].data_ptr()) params_[i].copy_(master_[i]);
  }
  for (auto& [i, s] : frozen_) {
    master_[i].index_fill_(s.dim, s.index, 0);
    if (master_[i].data_ptr() != params_[i].data_ptr()) params_[i].index_fill_(s.dim, s.index, 0);
  }
  return {loss.item<double>(), norm, lr, static_cast<int64_t>(count)};
}

}  // namespace neuroprune
