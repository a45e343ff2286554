/** What ran: neuroprune's version and the LibTorch under it, for `--version` and every output file. */
import fs from 'node:fs';
import path from 'node:path';
import { native, packageRoot } from './native';

export interface Environment {
  neuroprune: string;
  libtorch: { version: string; cuda: string | null; gpuAvailable: boolean; path: string };
  node: string;
}

export function environment(): Environment {
  const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8'));
  const rt = native().runtime();
  return {
    neuroprune: pkg.version,
    libtorch: { version: rt.torchVersion, cuda: rt.cudaBuild ? rt.cudaVersion : null, gpuAvailable: rt.cuda, path: rt.torchLibraryDir },
    node: process.version,
  };
}

/** One line: "neuroprune 0.1.0, LibTorch 2.13.0 (CPU) at /path/to/torch/lib". */
export function versionLine(env: Environment = environment()): string {
  const kind = env.libtorch.cuda ? `CUDA ${env.libtorch.cuda}${env.libtorch.gpuAvailable ? '' : ', no GPU visible'}` : 'CPU';
  return `neuroprune ${env.neuroprune}, LibTorch ${env.libtorch.version} (${kind}) at ${env.libtorch.path}, Node.js ${env.node}`;
}
