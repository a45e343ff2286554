// The Kubernetes examples without a cluster: the manifests are read as Kubernetes reads them (an Indexed
// Job whose shard count, retry policy, volume and command fit together), then the containers' commands
// are run here as the pods would run them (JOB_COMPLETION_INDEX 0..2, NEUROPRUNE_SHARD_COUNT from the
// manifest, the ConfigMap's variables), and the merged files must equal one unsharded run's.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { readSafetensors } from '../lib/checkpoint';
import { packageRoot } from '../lib/native';
import { tempDir, tinyGpt2 } from './helpers';

const root = packageRoot();
const cli = path.join(root, 'dist', 'lib', 'cli', 'main.js');
const dir = path.join(root, 'examples', 'k8s');
// Where the Dockerfile puts the project inside the image.
const IMAGE_ROOT = '/opt/neuroprune';

type Doc = Record<string, any>;
const load = (file: string): Doc[] => parseAllDocuments(fs.readFileSync(path.join(dir, file), 'utf8')).map((d) => {
  if (d.errors.length) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
  return d.toJS();
});
const attributeDocs = load('attribute-job.yaml');
const mergeDocs = load('merge-job.yaml');
const find = (docs: Doc[], kind: string) => {
  const d = docs.find((x) => x.kind === kind);
  if (!d) throw new Error(`no ${kind} in the manifest`);
  return d;
};
const configMap = find(attributeDocs, 'ConfigMap');
const claim = find(attributeDocs, 'PersistentVolumeClaim');
const attributeJob = find(attributeDocs, 'Job');
const mergeJob = find(mergeDocs, 'Job');
const envValue = (container: Doc, name: string) => container.env?.find((e: Doc) => e.name === name)?.value;

test('k8s: the attribute Job is an Indexed Job whose shard count, retries and volume fit together', (t) => {
  t.deepEqual(attributeDocs.map((d) => `${d.apiVersion} ${d.kind}`), ['v1 ConfigMap', 'v1 PersistentVolumeClaim', 'batch/v1 Job']);
  t.deepEqual(mergeDocs.map((d) => `${d.apiVersion} ${d.kind}`), ['batch/v1 Job']);
  const spec = attributeJob.spec;
  t.is(spec.completionMode, 'Indexed');
  t.is(spec.completions, 3);
  t.true(spec.parallelism >= 1 && spec.parallelism <= spec.completions);
  const [container] = spec.template.spec.containers;
  // neuroprune reads the shard count from here: it must be the completions.
  t.is(envValue(container, 'NEUROPRUNE_SHARD_COUNT'), String(spec.completions));
  // A retried index resumes: per-index retries need restartPolicy Never, as podFailurePolicy does.
  t.is(spec.template.spec.restartPolicy, 'Never');
  t.true(spec.backoffLimitPerIndex >= 1);
  for (const rule of spec.podFailurePolicy.rules) t.true(['Ignore', 'FailIndex', 'FailJob', 'Count'].includes(rule.action));
  t.true(spec.podFailurePolicy.rules.some((r: Doc) => r.action === 'Ignore' && r.onPodConditions?.some((c: Doc) => c.type === 'DisruptionTarget')));
  t.regex(container.command.join(' '), /neuroprune attribute "\$MODEL" --prompts "\$PROMPTS" --out "\$OUT" --resume/);

  // MODEL, PROMPTS and OUT come from the ConfigMap; the defaults are inside the image; OUT is on the volume.
  for (const c of [container, ...mergeJob.spec.template.spec.initContainers, ...mergeJob.spec.template.spec.containers]) {
    t.is(c.envFrom?.[0]?.configMapRef?.name, configMap.metadata.name, c.name);
  }
  for (const key of ['MODEL', 'PROMPTS']) t.true(configMap.data[key].startsWith(IMAGE_ROOT + '/'), `${key}=${configMap.data[key]}`);
  // The model is copied into the image; the prompts are made there from the shared data's task files.
  t.true(fs.existsSync(path.join(root, configMap.data.MODEL.slice(IMAGE_ROOT.length))), `MODEL: ${configMap.data.MODEL} is not in the project (the image copies it)`);
  const dockerfile = fs.readFileSync(path.join(dir, 'Dockerfile'), 'utf8');
  t.true(dockerfile.includes(`synth-data --kind prompts`) && dockerfile.includes(`--out ${configMap.data.PROMPTS}`), 'the Dockerfile makes PROMPTS');
  t.regex(dockerfile, /COPY --from=shared data\/icl_task_vectors /);
  t.regex(dockerfile, new RegExp(`WORKDIR ${IMAGE_ROOT}\\b`));
  for (const d of ['models', 'examples', 'lib', 'native']) t.regex(dockerfile, new RegExp(`COPY ${d} ${d}`));
  t.regex(dockerfile, /ln -s \/opt\/neuroprune\/dist\/lib\/cli\/main\.js \/usr\/local\/bin\/neuroprune/);
  for (const job of [attributeJob, mergeJob]) {
    const pod = job.spec.template.spec;
    const volume = pod.volumes.find((v: Doc) => v.persistentVolumeClaim?.claimName === claim.metadata.name);
    t.truthy(volume, `${job.metadata.name} mounts ${claim.metadata.name}`);
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      const mount = c.volumeMounts.find((m: Doc) => m.name === volume.name);
      t.true(configMap.data.OUT.startsWith(mount.mountPath + '/'), `${c.name}: OUT is on the shared volume`);
    }
  }
});

test('k8s: the pods\' commands, run here as an Indexed Job runs them, then the merge, equal one unsharded run', async (t) => {
  const model = await tinyGpt2();
  const work = tempDir('neuroprune-k8s-');
  // The image's 36 prompts, made as its Dockerfile makes them: three chunks at the default chunk
  // size (16), one per shard.
  const prompts = path.join(work, 'prompts.jsonl');
  const made = spawnSync(process.execPath, [cli, 'synth-data', '--kind', 'prompts', '--tasks', 'antonyms,country_capital', '--per-task', '18', '--shots', '2', '--data-dir', path.join(root, '..', 'shared', 'data'), '--out', prompts], { encoding: 'utf8' });
  t.is(made.status, 0, made.stderr);
  // `neuroprune` as the image has it: on the PATH.
  const bin = path.join(work, 'bin');
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, 'neuroprune'), `#!/bin/sh\nexec "${process.execPath}" "${cli}" "$@"\n`, { mode: 0o755 });
  const out = path.join(work, 'data', 'out');
  // What the ConfigMap sets, pointed at this test's files.
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, ...configMap.data, MODEL: model, PROMPTS: prompts, OUT: out };
  const run = (command: string[], extra: Record<string, string> = {}, timeout = 120_000) =>
    spawnSync(command[0], command.slice(1), { env: { ...env, ...extra }, encoding: 'utf8', timeout });

  // True when the command is still running after `ms` (it is then ended, with its children: the
  // init container's `sleep`).
  const stillRunningAfter = (command: string[], ms: number) => new Promise<boolean>((resolve) => {
    const child = spawn(command[0], command.slice(1), { env, stdio: 'ignore', detached: true });
    const timer = setTimeout(() => { process.kill(-child.pid!, 'SIGKILL'); resolve(true); }, ms);
    child.on('exit', () => { clearTimeout(timer); resolve(false); });
  });

  const [attribute] = attributeJob.spec.template.spec.containers;
  const [wait] = mergeJob.spec.template.spec.initContainers;
  const [merge] = mergeJob.spec.template.spec.containers;
  const count = attributeJob.spec.completions;
  for (let index = 0; index < count; index++) {
    // The merge's init container keeps waiting while a shard is missing (killed here after 2 s).
    t.true(await stillRunningAfter(wait.command, 2000), `the merge's init container did not wait for shard ${index}`);
    const r = run(attribute.command, { JOB_COMPLETION_INDEX: String(index), NEUROPRUNE_SHARD_COUNT: envValue(attribute, 'NEUROPRUNE_SHARD_COUNT') });
    t.is(r.status, 0, r.stderr);
  }
  const waited = run(wait.command, {}, 30_000);
  t.is(waited.status, 0, waited.stderr);
  const merged = run(merge.command);
  t.is(merged.status, 0, merged.stderr);

  const single = path.join(work, 'single');
  // The pods' thread count (the ConfigMap's OMP_NUM_THREADS): it changes float sums.
  const ref = spawnSync(process.execPath, [cli, 'attribute', model, '--prompts', prompts, '--out', single], {
    env: { ...process.env, OMP_NUM_THREADS: configMap.data.OMP_NUM_THREADS }, encoding: 'utf8', timeout: 120_000,
  });
  t.is(ref.status, 0, ref.stderr);
  const a = await readSafetensors(path.join(single, 'attributions.safetensors'));
  const b = await readSafetensors(path.join(out, 'attributions.safetensors'));
  t.deepEqual(Object.keys(b.tensors).sort(), Object.keys(a.tensors).sort());
  for (const [name, x] of Object.entries(a.tensors)) t.true(b.tensors[name].data.equals(x.data), name);
  const { timing: _a, ...sa } = JSON.parse(fs.readFileSync(path.join(single, 'summary.json'), 'utf8'));
  const { timing: _b, ...sb } = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
  t.deepEqual(sb, sa);
});
