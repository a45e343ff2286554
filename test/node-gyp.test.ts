import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../lib/native';
import { tempDir } from './helpers';

// binding.gyp must build the same sources as CMakeLists.txt: build it once in a scratch copy.
function findNodeGyp(): string | undefined {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return candidates.find((c): c is string => !!c && fs.existsSync(c));
}

/** Node's own headers, so node-gyp needs no download. */
function findNodeDir(): string | undefined {
  const candidates = [process.env.npm_config_nodedir, path.join(path.dirname(process.execPath), '..')];
  return candidates.find((c): c is string => !!c && fs.existsSync(path.join(c, 'include', 'node', 'node_api.h')));
}

test('binding.gyp builds the addon with node-gyp', (t) => {
  const nodeGyp = findNodeGyp();
  const nodeDir = findNodeDir();
  if (!nodeGyp || !nodeDir) {
    const reason = !nodeGyp ? 'node-gyp not found (neither npm_config_node_gyp nor npm\'s bundled copy)' : 'no Node.js headers next to node';
    t.log(`skipped: ${reason}`);
    console.log(`# node-gyp build skipped: ${reason}`);
    t.pass();
    return;
  }
  const root = packageRoot();
  const work = path.join(tempDir('neuroprune-gyp-'), 'src');
  fs.mkdirSync(work);
  for (const entry of ['binding.gyp', 'native', 'scripts', 'package.json']) {
    fs.cpSync(path.join(root, entry), path.join(work, entry), { recursive: true });
  }
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(work, 'node_modules'));
  // The LibTorch of the main (CMake) build, so that both builds compile against the same one.
  const torchDir = fs.readFileSync(path.join(root, 'build', 'torch-dir.txt'), 'utf8').trim();
  t.truthy(torchDir, 'the CMake build records its Torch_DIR');
  const env: NodeJS.ProcessEnv = { ...process.env, Torch_DIR: torchDir };
  delete env.LIBTORCH;
  const r = spawnSync(process.execPath, [nodeGyp, 'rebuild', `--nodedir=${nodeDir}`, '-j', '2'], { cwd: work, encoding: 'utf8', env });
  t.is(r.status, 0, `${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
  const addon = path.join(work, 'build', 'Release', 'neuroprune.node');
  const check = spawnSync(process.execPath, ['-e', `console.log(JSON.stringify(require(${JSON.stringify(addon)}).runtime()))`], { encoding: 'utf8' });
  t.is(check.status, 0, check.stderr);
  const rt = JSON.parse(check.stdout);
  t.true(rt.modelTypes.includes('gpt2'));
  t.is(fs.realpathSync(rt.torchLibraryDir), fs.realpathSync(require(path.join(root, 'build', 'Release', 'neuroprune.node')).runtime().torchLibraryDir));
  fs.rmSync(path.dirname(work), { recursive: true, force: true });
});
