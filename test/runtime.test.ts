// Which LibTorch runs: the one the addon was linked against, reported by --version and the API.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { environment, runtime } from '../lib';
import { packageRoot } from '../lib/native';

test('the LibTorch loaded is the one the addon was built against (no second install mixed in)', (t) => {
  const rt = runtime();
  t.truthy(rt.torchBuiltLibraryDir, 'the build records its LibTorch folder');
  t.is(fs.realpathSync(rt.torchLibraryDir), fs.realpathSync(rt.torchBuiltLibraryDir));
  t.true(fs.readdirSync(rt.torchLibraryDir).some((f) => f.startsWith('libtorch_cpu.')));
  t.true(rt.cxxStandard >= 202002, `built as C++${rt.cxxStandard}`);
  t.log(`LibTorch ${rt.torchVersion}${rt.cudaBuild ? ` CUDA ${rt.cudaVersion}` : ' CPU'} at ${rt.torchLibraryDir}`);
});

test('environment() names the version, CUDA and path of that LibTorch', (t) => {
  const env = environment();
  const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8'));
  t.is(env.neuroprune, pkg.version);
  t.is(env.libtorch.version, runtime().torchVersion);
  t.is(env.libtorch.path, runtime().torchLibraryDir);
  t.is(env.libtorch.cuda === null, !runtime().cudaBuild);
});

test('neuroprune --version prints neuroprune, LibTorch (version, CPU or CUDA) and its path', (t) => {
  const cli = path.join(packageRoot(), 'dist', 'lib', 'cli', 'main.js');
  const r = spawnSync(process.execPath, [cli, '--version'], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  const env = environment();
  t.is(r.stdout.trim(), `neuroprune ${env.neuroprune}, LibTorch ${env.libtorch.version} (${env.libtorch.cuda ? `CUDA ${env.libtorch.cuda}${env.libtorch.gpuAvailable ? '' : ', no GPU visible'}` : 'CPU'}) at ${env.libtorch.path}, Node.js ${process.version}`);
  t.regex(r.stdout, /^neuroprune \d+\.\d+\.\d+, LibTorch \d+\.\d+\.\d+ \((CPU|CUDA [^)]*)\) at \//);
});
