"""Golden references from Hugging Face transformers for the numerics tests (test/golden.test.ts).

For tiny random models of every architecture we load, written by transformers' own save_pretrained
(so config.json has the transformers 5 schema: rope_parameters, layer_types), this writes the logits
of two prompts and Integrated Gradients of each layer's MLP neurons (Mamba: the input of each mixer's
out_proj) from a plain autograd loop:
IG_i = a_i * (1/m) sum_{k=1..m} dF(k/m * a)/da_i, where a is the input of the down projection at the
last prompt position and F = log p(target | prompt).

    python test/golden/make_golden.py OUT_DIR

OUT_DIR/manifest.json lists the cases; OUT_DIR/<case>/ is the checkpoint plus golden.safetensors.
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file

STEPS = 16
VOCAB = 96

TINY = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, vocab_size=VOCAB)

# name -> (config class, kwargs). Each exercises something the loader must read from a v5 config.
CASES = {
    "gpt2": (transformers.GPT2Config, dict(n_embd=32, n_layer=2, n_head=4, n_inner=80, vocab_size=VOCAB, n_positions=64,
                                          bos_token_id=0, eos_token_id=0)),
    "gpt2-untied": (transformers.GPT2Config, dict(n_embd=32, n_layer=3, n_head=2, vocab_size=VOCAB, n_positions=64,
                                                 tie_word_embeddings=False, bos_token_id=0, eos_token_id=0)),
    "llama-gqa": (transformers.LlamaConfig, dict(TINY, num_key_value_heads=2)),
    "llama3-scaling": (transformers.LlamaConfig, dict(TINY, num_key_value_heads=1, max_position_embeddings=256, rope_parameters=dict(
        rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
        original_max_position_embeddings=32))),
    "llama-linear-bias-headdim": (transformers.LlamaConfig, dict(TINY, head_dim=8, attention_bias=True, mlp_bias=True,
                                                               rope_parameters=dict(rope_type="linear", rope_theta=123.0, factor=2.0))),
    "mistral-window": (transformers.MistralConfig, dict(TINY, num_key_value_heads=2, sliding_window=4)),
    "qwen2-layer-windows-tied": (transformers.Qwen2Config, dict(TINY, num_hidden_layers=4, num_key_value_heads=2, use_sliding_window=True,
                                                              sliding_window=3, max_window_layers=2, tie_word_embeddings=True,
                                                              rope_parameters=dict(rope_type="default", rope_theta=1000000.0))),
    "qwen2-untied": (transformers.Qwen2Config, dict(TINY, num_key_value_heads=4, tie_word_embeddings=False)),
    "neox-parallel": (transformers.GPTNeoXConfig, dict(TINY, rope_parameters=dict(rope_type="default", rope_theta=10000.0,
                                                                                partial_rotary_factor=0.5))),
    "neox-sequential": (transformers.GPTNeoXConfig, dict(TINY, use_parallel_residual=False, rope_parameters=dict(
        rope_type="default", rope_theta=20000.0, partial_rotary_factor=0.25))),
    # Mamba: the slow path (no CUDA kernels); the neurons are the input of each mixer's out_proj.
    "mamba": (transformers.MambaConfig, dict(hidden_size=32, state_size=8, num_hidden_layers=2, expand=2, conv_kernel=4,
                                             vocab_size=VOCAB, bos_token_id=0, eos_token_id=0, pad_token_id=0)),
    "mamba-bias-untied": (transformers.MambaConfig, dict(hidden_size=32, state_size=4, num_hidden_layers=3, expand=3, conv_kernel=3,
                                                         time_step_rank=5, use_bias=True, use_conv_bias=False,
                                                         tie_word_embeddings=False, residual_in_fp32=False, vocab_size=VOCAB,
                                                         bos_token_id=0, eos_token_id=0, pad_token_id=0)),
}


def down_projection(model, layer):
    """The module whose input is blocks.{layer}.mlp.hook_post."""
    kind = model.config.model_type
    if kind == "gpt2":
        return model.transformer.h[layer].mlp.c_proj
    if kind == "gpt_neox":
        return model.gpt_neox.layers[layer].mlp.dense_4h_to_h
    if kind == "mamba":
        return model.backbone.layers[layer].mixer.out_proj  # its input is blocks.{layer}.mixer.hook_post
    return model.model.layers[layer].mlp.down_proj


def objective(model, ids, target):
    logits = model(torch.tensor([ids])).logits[0, -1]
    return torch.log_softmax(logits.float(), -1)[target]


def integrated_gradients(model, ids, target, layer):
    module = down_projection(model, layer)
    captured = {}

    def grab_input(m, args):
        captured["a"] = args[0][0, -1].detach().clone()  # returns None: the input is left as it is

    grab = module.register_forward_pre_hook(grab_input)
    with torch.no_grad():
        f_full = objective(model, ids, target).item()
    grab.remove()
    a = captured["a"]
    total = torch.zeros_like(a)
    scaled = {}

    def replace(m, args):
        x = args[0].clone()
        x[0, -1] = scaled["x"]
        return (x,)

    hook = module.register_forward_pre_hook(replace)
    try:
        for k in range(1, STEPS + 1):  # riemann_right: alpha = k/m, equal weights
            scaled["x"] = (k / STEPS * a).requires_grad_(True)
            f = objective(model, ids, target)
            (grad,) = torch.autograd.grad(f, scaled["x"])
            total += grad
        with torch.no_grad():
            scaled["x"] = torch.zeros_like(a)
            f_baseline = objective(model, ids, target).item()
    finally:
        hook.remove()
    return a * total / STEPS, f_full, f_baseline


def main(out):
    os.makedirs(out, exist_ok=True)
    manifest = {"transformers": transformers.__version__, "torch": torch.__version__, "steps": STEPS,
                "rule": "riemann_right", "objective": "logprob", "positions": "last", "cases": []}
    for index, (name, (config_class, kwargs)) in enumerate(CASES.items()):
        torch.manual_seed(index)
        config = config_class(**kwargs)
        config._attn_implementation = "eager"
        model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager").float().eval()
        with torch.no_grad():  # move norms off 1 and biases off 0, so every parameter is exercised
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
        folder = os.path.join(out, name)
        model.save_pretrained(folder)
        for p in model.parameters():
            p.requires_grad_(False)

        g = torch.Generator().manual_seed(100 + index)
        prompts = [torch.randint(1, VOCAB, (n,), generator=g).tolist() for n in (11, 6)]
        targets = torch.randint(1, VOCAB, (len(prompts),), generator=g).tolist()
        n_layers = config.num_hidden_layers
        tensors = {}
        for i, (ids, target) in enumerate(zip(prompts, targets)):
            with torch.no_grad():
                tensors[f"logits.{i}"] = model(torch.tensor([ids])).logits[0].float().contiguous()
            rows = [integrated_gradients(model, ids, target, layer) for layer in range(n_layers)]
            tensors[f"ig.{i}"] = torch.stack([r[0] for r in rows]).float().contiguous()
            tensors[f"f_full.{i}"] = torch.tensor([r[1] for r in rows], dtype=torch.float32)
            tensors[f"f_baseline.{i}"] = torch.tensor([r[2] for r in rows], dtype=torch.float32)
        save_file(tensors, os.path.join(folder, "golden.safetensors"))
        manifest["cases"].append({"name": name, "dir": name, "model_type": config.model_type, "layers": n_layers,
                                  "prompts": [{"ids": ids, "target": t} for ids, t in zip(prompts, targets)]})
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
