/** A model loaded for one command, with Ctrl-C wired to an AbortSignal, always disposed. */
import { NeuropruneError } from '../errors';
import { LoadOptions, Model } from '../model';

export async function withModel<T>(id: string, options: LoadOptions, run: (model: Model, signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  try {
    const model = await Model.load(id, options);
    try {
      // A load cannot be interrupted: Ctrl-C during it is honoured here.
      if (controller.signal.aborted) throw new NeuropruneError('E_ABORTED', 'cancelled while loading the model');
      return await run(model, controller.signal);
    } finally {
      model.dispose();
    }
  } finally {
    process.off('SIGINT', onSigint);
  }
}
