#!/usr/bin/env node
// Build settings for binding.gyp (node-gyp). Plain Node.js, no dependencies.
//
//   node scripts/torch-flags.js <mode>
//
// modes (one item per word, POSIX-quoted where needed: gyp's <!@( ) splits with shlex):
//   sources   every .cpp under native/core (recursively) and native/binding (relative to the package root)
//   include   LibTorch include dirs (system dirs such as /usr/include are left out)
//   isystem   the same as -isystem <dir> pairs, so that GCC/Clang treat LibTorch's headers as system
//             headers (no -Wall/-Wextra noise from them), as CMake does
//   libdirs   LibTorch library dir (left out when it is a system dir)
//   libs      -ltorch -ltorch_cpu -lc10 (+ torch_cuda, c10_cuda, ... when present; + glog/gflags when c10 uses them)
//   ldflags   -Wl,-rpath,<libdir> when the lib dir is not a system dir
//   defines   _GLIBCXX_USE_CXX11_ABI=<0|1> (Linux) and the compile definitions LibTorch's CMake targets export
//   undefines the opposite _GLIBCXX_USE_CXX11_ABI=<1|0>, for "defines!" (node's common.gypi defines =1)
//   info      a JSON summary, for people
//
// LibTorch is looked for in the same order as CMakeLists.txt:
//   1. $LIBTORCH    a libtorch folder with include/ and lib/
//   2. $Torch_DIR   <root>/share/cmake/Torch (root three levels up), or a distro layout
//                   such as /usr/lib/x86_64-linux-gnu/cmake/Torch
//   3. python3's torch (include/, include/torch/csrc/api/include, lib/; ABI from torch._C), then
//      the torch of the project's .venv (scripts/setup.sh makes it)
//   4. the system (Debian libtorch-dev: /usr/include, /usr/lib/<multiarch>)
'use strict';

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..');
const isWin = process.platform === 'win32';
const isMac = process.platform === 'darwin';
const isLinux = process.platform === 'linux';

function die(msg) {
  process.stderr.write(`torch-flags: ${msg}\n`);
  process.exit(1);
}

function warn(msg) {
  process.stderr.write(`torch-flags: warning: ${msg}\n`);
}

function exists(p) {
  try {
    fs.accessSync(p);
    return true;
  } catch {
    return false;
  }
}

function readText(p) {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return null;
  }
}

// Forward slashes everywhere (gyp and shlex both cope with them, also on Windows).
function slash(p) {
  return p.split(path.sep).join('/');
}

// ---------------------------------------------------------------------------------------------
// Where things are

const MULTIARCH = {
  x64: 'x86_64-linux-gnu',
  arm64: 'aarch64-linux-gnu',
  arm: 'arm-linux-gnueabihf',
  ia32: 'i386-linux-gnu',
  ppc64: 'powerpc64le-linux-gnu',
  s390x: 's390x-linux-gnu',
  riscv64: 'riscv64-linux-gnu',
  loong64: 'loongarch64-linux-gnu',
}[process.arch];

// Dirs the compiler or the linker and loader search anyway: never passed as -I, -L or rpath.
const SYSTEM_INCLUDE_DIRS = ['/usr/include', '/usr/local/include'];
const SYSTEM_LIB_DIRS = ['/lib', '/lib64', '/usr/lib', '/usr/lib64'].concat(
  MULTIARCH ? [`/lib/${MULTIARCH}`, `/usr/lib/${MULTIARCH}`] : []
);

function isSystemDir(dir, list) {
  const d = path.resolve(dir);
  return list.some((s) => path.resolve(s) === d);
}

function libFile(dir, name) {
  const candidates = isWin
    ? [`${name}.lib`]
    : isMac
      ? [`lib${name}.dylib`, `lib${name}.so`]
      : [`lib${name}.so`];
  for (const c of candidates) {
    const p = path.join(dir, c);
    if (exists(p)) return p;
  }
  return null;
}

function hasHeaders(includeRoot) {
  return exists(path.join(includeRoot, 'torch', 'csrc', 'api', 'include', 'torch', 'torch.h'));
}

// A LibTorch found somewhere: { origin, includeRoot, libDir, cmakeDir, abi, version }
function layout(origin, includeRoot, libDir, cmakeDir, extra = {}) {
  if (!includeRoot || !hasHeaders(includeRoot)) return null;
  if (!libDir || !libFile(libDir, 'torch')) return null;
  return {
    origin,
    includeRoot: path.resolve(includeRoot),
    libDir: path.resolve(libDir),
    cmakeDir: cmakeDir && exists(cmakeDir) ? path.resolve(cmakeDir) : null,
    abi: null,
    version: null,
    ...extra,
  };
}

function fromRoot(origin, root, extra) {
  return layout(origin, path.join(root, 'include'), path.join(root, 'lib'), path.join(root, 'share', 'cmake'), extra);
}

function fromLibtorchEnv(dir) {
  return fromRoot('LIBTORCH', path.resolve(dir));
}

function fromTorchDir(dir) {
  const torchDir = path.resolve(dir); // .../cmake/Torch
  const cmakeDir = path.dirname(torchDir); // .../cmake
  // libtorch zip, pip wheel: <root>/share/cmake/Torch
  const up3 = path.resolve(torchDir, '..', '..', '..');
  const viaRoot = fromRoot('Torch_DIR', up3);
  if (viaRoot) return viaRoot;
  // distro layout: <prefix>/lib/<multiarch>/cmake/Torch with headers in <prefix>/include
  const libDir = path.resolve(torchDir, '..', '..');
  for (const prefix of [path.resolve(libDir, '..'), path.resolve(libDir, '..', '..')]) {
    const found = layout('Torch_DIR', path.join(prefix, 'include'), libDir, cmakeDir);
    if (found) return found;
  }
  return null;
}

function fromPython(python = isWin ? 'python' : 'python3') {
  const code = [
    'import json, os, torch',
    "abi = getattr(torch._C, '_GLIBCXX_USE_CXX11_ABI', None)",
    "print(json.dumps({'dir': os.path.dirname(torch.__file__), 'abi': None if abi is None else int(abi), 'version': torch.__version__, 'cuda': torch.version.cuda}))",
  ].join('\n');
  const r = spawnSync(python, ['-c', code], { encoding: 'utf8', timeout: 120000, windowsHide: true });
  if (r.error || r.status !== 0 || !r.stdout) return null;
  let info;
  try {
    info = JSON.parse(r.stdout.trim().split(/\r?\n/).pop());
  } catch {
    return null;
  }
  const found = fromRoot(`the torch of ${python}`, info.dir, { abi: info.abi, version: info.version, cuda: info.cuda || null });
  if (!found) warn(`python3's torch at ${info.dir} has no C++ headers or libtorch; trying the system`);
  return found;
}

function fromSystem() {
  if (isWin) return null;
  const libDirs = SYSTEM_LIB_DIRS.slice().reverse().concat(['/usr/local/lib']);
  for (const inc of SYSTEM_INCLUDE_DIRS) {
    if (!hasHeaders(inc)) continue;
    for (const libDir of libDirs) {
      const found = layout('system', inc, libDir, path.join(libDir, 'cmake'));
      if (found) return found;
    }
  }
  return null;
}

function discover() {
  const env = process.env;
  if (env.LIBTORCH) {
    return fromLibtorchEnv(env.LIBTORCH) ||
      die(`LIBTORCH=${env.LIBTORCH} is not a libtorch folder (want include/torch/csrc/api/include and lib/ with libtorch)`);
  }
  if (env.Torch_DIR) {
    return fromTorchDir(env.Torch_DIR) ||
      die(`Torch_DIR=${env.Torch_DIR}: no LibTorch headers and libraries found around it`);
  }
  const venv = path.join(ROOT, '.venv', isWin ? 'Scripts' : 'bin', 'python');
  return fromPython() || (exists(venv) ? fromPython(venv) : null) || fromSystem() ||
    die('LibTorch not found: set LIBTORCH (a libtorch folder) or Torch_DIR, install torch for python3, or install libtorch-dev');
}

// ---------------------------------------------------------------------------------------------
// What LibTorch's CMake files say

// INTERFACE_COMPILE_DEFINITIONS of the named targets in a *Targets.cmake file (no generator expressions).
function targetDefines(file, wanted) {
  const text = readText(file);
  if (!text) return [];
  const out = [];
  const re = /set_target_properties\(\s*([^\s)]+)\s+PROPERTIES([\s\S]*?)\n\)/g;
  let m;
  while ((m = re.exec(text))) {
    if (wanted && !wanted.includes(m[1])) continue;
    const d = /INTERFACE_COMPILE_DEFINITIONS\s+"([^"]*)"/.exec(m[2]);
    if (!d) continue;
    for (const item of d[1].split(';')) {
      if (item && !item.includes('$<') && !out.includes(item)) out.push(item);
    }
  }
  return out;
}

function c10Macros(t) {
  const text = readText(path.join(t.includeRoot, 'c10', 'macros', 'cmake_macros.h')) || '';
  return {
    glog: /^\s*#define\s+C10_USE_GLOG\b/m.test(text),
    gflags: /^\s*#define\s+C10_USE_GFLAGS\b/m.test(text),
  };
}

function cxx11Abi(t) {
  if (!isLinux) return null;
  if (t.abi !== null && t.abi !== undefined) return t.abi;
  if (t.cmakeDir) {
    const text = readText(path.join(t.cmakeDir, 'Torch', 'TorchConfig.cmake')) || '';
    const m = /_GLIBCXX_USE_CXX11_ABI=([01])/.exec(text);
    if (m) return Number(m[1]);
  }
  return null; // unknown: leave the compiler's default (1 for GCC >= 5)
}

const TORCH_TARGETS = ['c10', 'torch_cpu', 'torch', 'torch_cuda', 'torch_cuda_cu', 'torch_cuda_cpp', 'c10_cuda'];
const CUDA_LIBS = ['torch_cuda', 'torch_cuda_cu', 'torch_cuda_cpp', 'c10_cuda'];

// ---------------------------------------------------------------------------------------------
// Modes

function listSources() {
  const out = [];
  const walk = (dir, recursive) => {
    let entries;
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (recursive) walk(p, true);
      } else if (e.name.endsWith('.cpp')) {
        out.push(slash(path.relative(ROOT, p)));
      }
    }
  };
  walk(path.join(ROOT, 'native', 'core'), true);
  walk(path.join(ROOT, 'native', 'binding'), false);
  return out.sort();
}

function includeDirs(t) {
  const dirs = [t.includeRoot, path.join(t.includeRoot, 'torch', 'csrc', 'api', 'include')];
  const searched = dirs.concat(SYSTEM_INCLUDE_DIRS);
  if (!searched.some((d) => exists(path.join(d, 'nlohmann', 'json.hpp')))) {
    warn('nlohmann/json.hpp not found: install nlohmann-json3-dev (Debian) or add its include dir');
  }
  return dirs.filter((d) => !isSystemDir(d, SYSTEM_INCLUDE_DIRS)).map(slash);
}

function libDirs(t) {
  return isSystemDir(t.libDir, SYSTEM_LIB_DIRS) ? [] : [slash(t.libDir)];
}

function libs(t) {
  const names = ['torch', 'torch_cpu', 'c10'].concat(CUDA_LIBS.filter((n) => libFile(t.libDir, n)));
  if (isWin) return names.map((n) => slash(libFile(t.libDir, n) || path.join(t.libDir, `${n}.lib`)));
  const out = [];
  // torch_cpu / torch_cuda register their operators and CUDA hooks from static initialisers:
  // nothing references them directly, so keep them even where the linker defaults to --as-needed
  // (CMake's Torch targets do the same).
  if (!isMac) out.push('-Wl,--no-as-needed');
  out.push(...names.map((n) => `-l${n}`));
  const macros = c10Macros(t);
  if (macros.glog) out.push('-lglog');
  if (macros.gflags) out.push('-lgflags');
  return out;
}

function ldflags(t) {
  if (isWin || isSystemDir(t.libDir, SYSTEM_LIB_DIRS)) return [];
  return [`-Wl,-rpath,${slash(t.libDir)}`];
}

// The CUDA version of a CUDA build: python's torch.version.cuda, else a libtorch zip's build-version.
function cudaVersion(t) {
  if (!CUDA_LIBS.some((n) => libFile(t.libDir, n))) return null;
  if (t.cuda) return t.cuda;
  const m = /\+cu(\d+)(\d)\b/.exec(readText(path.join(t.includeRoot, '..', 'build-version')) || '');
  return m ? `${m[1]}.${m[2]}` : 'unknown';
}

function defines(t) {
  const out = [`NEUROPRUNE_TORCH_LIBDIR="${slash(fs.realpathSync(t.libDir))}"`];
  const cuda = cudaVersion(t);
  if (cuda) out.push(`NEUROPRUNE_TORCH_CUDA="${cuda}"`);
  const abi = cxx11Abi(t);
  if (abi !== null) out.push(`_GLIBCXX_USE_CXX11_ABI=${abi}`);
  if (t.cmakeDir) {
    out.push(...targetDefines(path.join(t.cmakeDir, 'Caffe2', 'Caffe2Targets.cmake'), TORCH_TARGETS));
    const macros = c10Macros(t);
    if (macros.glog) out.push(...targetDefines(path.join(t.cmakeDir, 'glog', 'glog-targets.cmake'), ['glog::glog']));
    if (macros.gflags) out.push(...targetDefines(path.join(t.cmakeDir, 'gflags', 'gflags-targets.cmake'), null));
  }
  return out.filter((d, i) => out.indexOf(d) === i);
}

// POSIX shell quoting, because gyp splits <!@( ) output with shlex.split.
function quote(s) {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`;
}

function main() {
  const mode = process.argv[2];
  let items;
  switch (mode) {
    case 'sources':
      items = listSources();
      if (items.length === 0) die(`no .cpp files under ${path.join(ROOT, 'native')}`);
      break;
    case 'include':
      items = includeDirs(discover());
      break;
    case 'isystem':
      items = includeDirs(discover()).flatMap((d) => ['-isystem', d]);
      break;
    case 'libdirs':
      items = libDirs(discover());
      break;
    case 'libs':
      items = libs(discover());
      break;
    case 'ldflags':
    case 'rpath':
      items = ldflags(discover());
      break;
    case 'defines':
      items = defines(discover());
      break;
    case 'undefines': {
      const abi = cxx11Abi(discover());
      items = abi === null ? [] : [`_GLIBCXX_USE_CXX11_ABI=${1 - abi}`];
      break;
    }
    case 'info': {
      const t = discover();
      const summary = {
        ...t,
        cxx11Abi: cxx11Abi(t),
        sources: listSources(),
        include: includeDirs(t),
        libdirs: libDirs(t),
        libs: libs(t),
        ldflags: ldflags(t),
        defines: defines(t),
      };
      process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
      return;
    }
    default:
      die(`usage: node ${slash(path.relative(process.cwd(), __filename)) || 'torch-flags.js'} sources|include|isystem|libdirs|libs|ldflags|defines|undefines|info`);
  }
  process.stdout.write(items.map(quote).join(' ') + '\n');
}

main();
