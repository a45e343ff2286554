/** What every CLI command shares: Ctrl-C wired to an AbortSignal, and a model loaded for one command, always disposed. */
import { NeuropruneError } from '../errors';
import { LoadOptions, Model } from '../model';
import { ModelPool, PoolLoadOptions } from '../model-pool';

/**
 * Runs `run` with Ctrl-C (SIGINT) turned into an AbortSignal instead of killing the process, so that
 * whatever it writes is left whole or not at all; a run that finishes after Ctrl-C still ends in
 * E_ABORTED.
 */
export async function interruptible<T>(run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.on('SIGINT', onSigint);
  try {
    const result = await run(controller.signal);
    if (controller.signal.aborted) throw new NeuropruneError('E_ABORTED', 'cancelled (Ctrl-C)');
    return result;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

export async function withModel<T>(id: string, options: LoadOptions, run: (model: Model, signal: AbortSignal) => Promise<T>): Promise<T> {
  return interruptible(async (signal) => {
    const model = await Model.load(id, options);
    try {
      // A load cannot be interrupted: Ctrl-C during it is honoured here.
      if (signal.aborted) throw new NeuropruneError('E_ABORTED', 'cancelled while loading the model');
      return await run(model, signal);
    } finally {
      model.dispose();
    }
  });
}

/** withModel for `--devices`: one replica per device; Ctrl-C cancels every replica. */
export async function withPool<T>(id: string, options: PoolLoadOptions, run: (pool: ModelPool, signal: AbortSignal) => Promise<T>): Promise<T> {
  return interruptible(async (signal) => {
    const pool = await ModelPool.load(id, options);
    try {
      if (signal.aborted) throw new NeuropruneError('E_ABORTED', 'cancelled while loading the models');
      return await run(pool, signal);
    } finally {
      pool.dispose();
    }
  });
}
