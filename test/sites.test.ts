// Neuron sites: mlp.hook_pre (the up projection's output before the activation) beside mlp.hook_post,
// for activations, activation scaling and Integrated Gradients (fast equals reference) on every
// architecture; neuron sets keep their site.
import test from 'ava';
import path from 'node:path';
import { initCheckpoint, Model, neuronSet, POSITIONS } from '../lib';
import { codeOf, maxAbsDiff, relDiff, tempDir } from './helpers';

const prompts = [
  { prompt: 'example:dog->bird\nexample:hot->', target: 'cold' },
  { prompt: 'Paris is in ', target: 'France!' },
];

const mlpArchitectures = ['gpt2', 'llama', 'mistral', 'qwen2', 'gpt_neox'];
const models = new Map<string, Model>();
test.before(async () => {
  for (const arch of [...mlpArchitectures, 'mamba']) {
    const dir = path.join(tempDir(), arch);
    await initCheckpoint(arch, dir, { seed: 5, hidden: 32, heads: 4, layers: 3 });
    models.set(arch, await Model.load(dir));
  }
});

for (const arch of mlpArchitectures) {
  for (const positions of POSITIONS) {
    test.serial(`${arch}: hook_pre fast equals reference, positions ${positions}`, async (t) => {
      const model = models.get(arch)!;
      t.deepEqual(model.info.neuronSites, ['mlp.hook_post', 'mlp.hook_pre']);
      const options = { prompts, objective: 'prob' as const, positions, steps: 6, layers: [0, 1, 2], site: 'mlp.hook_pre' as const, memoryBudgetMB: 1 };
      const fast = await model.attribute({ ...options, method: 'fast' });
      const ref = await model.attribute({ ...options, method: 'reference' });
      t.is(fast.options.site, 'mlp.hook_pre');
      t.true(relDiff(fast, ref) < 1e-4, `relative difference ${relDiff(fast, ref)}`);
      fast.prompts.forEach((p, b) => p.fBaseline.forEach((f, l) => t.true(Math.abs(f - ref.prompts[b].fBaseline[l]) < 1e-5)));
      // Gated MLPs: post = act(gate) * pre is linear in pre, so scaling pre by alpha is scaling post by
      // alpha and IG is the same at both sites. Un-gated: post = act(pre), other scores.
      const post = await model.attribute({ ...options, site: 'mlp.hook_post', method: 'fast' });
      if (arch === 'gpt2' || arch === 'gpt_neox') t.true(relDiff(fast, post) > 1e-3);
      else t.true(relDiff(fast, post) < 1e-4, `gated: ${relDiff(fast, post)}`);
    });
  }

  test.serial(`${arch}: hook_pre activations lead to hook_post, and zeroing a neuron at either site is the same`, async (t) => {
    const model = models.get(arch)!;
    const pre = await model.activations('The sky is', { site: 'mlp.hook_pre', layers: [1] });
    const post = await model.activations('The sky is', { layers: [1] });
    t.is(pre.layers.get(1)!.length, post.layers.get(1)!.length);
    t.true(maxAbsDiff(pre.layers.get(1)!, post.layers.get(1)!) > 1e-4, 'the sites differ');
    if (arch === 'gpt2' || arch === 'gpt_neox') {
      // post = gelu(pre) for the un-gated MLPs
      const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
      const exact = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));
      const act = arch === 'gpt2' ? gelu : exact;
      t.true(maxAbsDiff(Array.from(pre.layers.get(1)!, act), post.layers.get(1)!) < 1e-4);
    }
    const neurons = [{ layer: 1, index: 3 }, { layer: 2, index: 7 }];
    const atPre = await model.scale(neurons, 0, { site: 'mlp.hook_pre' });
    const a = await model.logits('The sky is');
    await model.restore(atPre);
    const atPost = await model.scale(neurons, 0, { site: 'mlp.hook_post' });
    const b = await model.logits('The sky is');
    await model.restore(atPost);
    t.true(maxAbsDiff(a.data, b.data) < 1e-5);
    // Doubling differs between the sites (act(2x) != 2 act(x)).
    const twicePre = await model.scale(neurons, 2, { site: 'mlp.hook_pre' });
    const c = await model.logits('The sky is');
    await model.restore(twicePre);
    const clean = await model.logits('The sky is');
    t.true(maxAbsDiff(c.data, clean.data) > 1e-6);
  });

  test.serial(`${arch}: scaling at the last position only leaves earlier positions alone`, async (t) => {
    const model = models.get(arch)!;
    const neurons = Array.from({ length: 8 }, (_, i) => ({ layer: 0, index: i }));
    const clean = await model.logits('abcdef');
    for (const site of ['mlp.hook_pre', 'mlp.hook_post'] as const) {
      const edit = await model.scale(neurons, 0, { site, positions: 'last' });
      const last = await model.logits('abcdef');
      await model.restore(edit);
      const [, T] = clean.shape;
      for (let p = 0; p < T - 1; p++) t.true(maxAbsDiff(last.at(0, p), clean.at(0, p)) < 1e-6, `${site}: position ${p} unchanged`);
      t.true(maxAbsDiff(last.at(0, T - 1), clean.at(0, T - 1)) > 1e-6, `${site}: the last position changed`);
    }
  });
}

test.serial('mamba has no hook_pre: activations, scaling and attribution say so with E_SITE', async (t) => {
  const model = models.get('mamba')!;
  t.deepEqual(model.info.neuronSites, ['mixer.hook_post']);
  t.is(await codeOf(model.activations('ab', { site: 'mlp.hook_pre' })), 'E_SITE');
  t.is(await codeOf(model.scale([{ layer: 0, index: 0 }], 0, { site: 'mlp.hook_pre' })), 'E_SITE');
  t.is(await codeOf(model.attribute({ prompts, site: 'mlp.hook_pre' })), 'E_SITE');
  t.is(await codeOf(model.prune(neuronSet('x', [{ layer: 0, index: 0 }], {}, 'mlp.hook_pre'))), 'E_SITE');
});

test.serial('a neuron set found at one site and used at another is E_SITE', async (t) => {
  const model = models.get('gpt2')!;
  const set = neuronSet('x', [{ layer: 0, index: 1 }], {}, 'mlp.hook_pre');
  t.is(await codeOf(model.scale(set, 0, { site: 'mlp.hook_post' })), 'E_SITE');
  const edit = await model.scale(set, 0);  // its own site by default
  await model.restore(edit);
  const error = await model.scale(neuronSet('x', [{ layer: 0, index: 1 }], {}, 'mlp.hook_post'), 0, { site: 'mlp.hook_pre' }).catch((e) => e);
  t.regex(String(error.message), /found at mlp\.hook_post.*uses mlp\.hook_pre/);
});

// Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7).
function erf(x: number): number {
  const s = Math.sign(x), a = Math.abs(x), k = 1 / (1 + 0.3275911 * a);
  const y = 1 - ((((1.061405429 * k - 1.453152027) * k + 1.421413741) * k - 0.284496736) * k + 0.254829592) * k * Math.exp(-a * a);
  return s * y;
}
