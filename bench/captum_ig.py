"""The same IG job in HF transformers + Captum's LayerIntegratedGradients, for `npm run bench -- ig --vs-captum`.

For each layer l, the neurons are the input of the MLP's down projection (blocks.{l}.mlp.hook_post) at
the last prompt position, the baseline is 0 there, F = log p(target | prompt), m steps of the right
Riemann rule: exactly what neuroprune computes. To get Captum's LayerIntegratedGradients to scale
that activation from 0, a gate module sits in front of the down projection and multiplies its input
by g: g = 1 everywhere for the input and g = 1 except 0 at the last position for the baseline. Captum
then runs the whole model for every step of every layer, as it always does. Two ways to call it:
"best": weights frozen and only the last position's logits computed (logits_to_keep=1), the least
work Captum can be asked to do; "default": the model as from_pretrained returns it and
model(input_ids).logits[:, -1], as Captum's tutorials write it.

    python bench/captum_ig.py MODEL_DIR JOB.json OUT.safetensors

JOB.json: {"ids": [...], "target": int, "steps": int, "layers": [...] or null, "threads": int, "mode": "best" | "default"}.
Prints one JSON line: times and versions; OUT.safetensors holds "scores" [layers, d_mlp].
"""
import json
import sys
import time

import captum
import torch
import transformers
from captum.attr import LayerIntegratedGradients
from safetensors.torch import save_file


class Gate(torch.nn.Module):
    """Multiplies its input by self.g ([batch, T, 1]) when set."""

    def __init__(self):
        super().__init__()
        self.g = None

    def forward(self, x):
        return x if self.g is None else x * self.g


def mlp_of(model, layer):
    kind = model.config.model_type
    if kind == "gpt2":
        return model.transformer.h[layer].mlp, "c_proj"
    if kind == "gpt_neox":
        return model.gpt_neox.layers[layer].mlp, "dense_4h_to_h"
    return model.model.layers[layer].mlp, "down_proj"


def main(model_dir, job_file, out_file):
    job = json.load(open(job_file))
    torch.set_num_threads(job["threads"])
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    best = job.get("mode", "best") == "best"
    if best:
        for p in model.parameters():
            p.requires_grad_(False)
    n_layers = model.config.num_hidden_layers
    layers = job["layers"] if job["layers"] is not None else list(range(n_layers))
    ids = torch.tensor([job["ids"]])
    target, steps = job["target"], job["steps"]
    T = ids.shape[1]
    ones = torch.ones(1, T, 1)
    last_zero = ones.clone()
    last_zero[0, -1] = 0

    gates = []
    for layer in range(n_layers):
        mlp, name = mlp_of(model, layer)
        gate = Gate()
        setattr(mlp, name, torch.nn.Sequential(gate, getattr(mlp, name)))
        gates.append(gate)

    def run_layer(layer, n_steps):
        gate = gates[layer]

        def forward(input_ids, g):
            gate.g = g
            try:
                if best:
                    logits = model(input_ids=input_ids, logits_to_keep=1).logits[:, -1].float()
                else:
                    logits = model(input_ids=input_ids).logits[:, -1].float()
            finally:
                gate.g = None
            return torch.log_softmax(logits, -1)[:, target]

        lig = LayerIntegratedGradients(forward, gate)
        attributions = lig.attribute(inputs=(ids, ones), baselines=(ids, last_zero), n_steps=n_steps,
                                     method="riemann_right", internal_batch_size=n_steps)
        return attributions[0, -1]

    run_layer(layers[0], 2)  # warm-up: allocator, thread pool
    scores, per_layer = [], []
    for layer in layers:
        started = time.perf_counter()
        scores.append(run_layer(layer, steps).detach().float())
        per_layer.append((time.perf_counter() - started) * 1000)
    save_file({"scores": torch.stack(scores).contiguous()}, out_file)
    print(json.dumps({"captum_ms": round(sum(per_layer)), "captum_per_layer_ms": [round(t) for t in per_layer],
                      "captum": captum.__version__, "transformers": transformers.__version__, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "mode": "best" if best else "default"}))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
