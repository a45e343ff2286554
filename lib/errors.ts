/** Stable error codes. Programs branch on `error.code`; the message names the file, tensor or argument. */
export type ErrorCode =
  | 'E_CHECKPOINT' // unreadable or corrupt safetensors file
  | 'E_DTYPE' // unknown dtype in a checkpoint
  | 'E_MISSING_TENSOR' // the config needs a tensor the checkpoint lacks
  | 'E_SHAPE' // a tensor's shape does not match the config
  | 'E_CONFIG' // config.json missing, invalid, or an unknown model_type
  | 'E_TOKENIZER' // tokenizer.json missing or unreadable
  | 'E_NOT_FOUND' // no such model folder, cache entry or random preset
  | 'E_ARG' // a bad argument
  | 'E_RANGE' // an index outside its range (token id, position, neuron), or a duplicate neuron
  | 'E_NEURON_FILE' // a neuron-set file that is unreadable or has wrong fields
  | 'E_SITE' // a neuron site the model lacks, or a neuron set used at another site than it was found at
  | 'E_DATA_FILE' // an MCQA data file that is unreadable or has wrong fields
  | 'E_PROMPT_FILE' // a prompts file that is unreadable or has wrong fields
  | 'E_TASK_FILE' // a task data file that is unreadable or has wrong fields
  | 'E_BUDGET' // the memory budget is too small for one row of work
  | 'E_DEVICE' // the device asked for is not available
  | 'E_OOM' // out of host or device memory
  | 'E_IO' // a file could not be written
  | 'E_SHARD' // a sharded run's shard folder is missing, incomplete, or made with other settings than the others
  | 'E_ABORTED' // cancelled through an AbortSignal
  | 'E_DISPOSED' // the model was disposed
  | 'E_NATIVE' // the native addon is missing or failed to load
  | 'E_TORCH'; // any other LibTorch failure

export class NeuropruneError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NeuropruneError';
    this.code = code;
  }
}

/** Native errors arrive as plain Errors with a `code`; give them the library's class. */
export function toNeuropruneError(error: unknown): NeuropruneError {
  if (error instanceof NeuropruneError) return error;
  if (error instanceof Error) {
    const code = (error as Error & { code?: string }).code;
    return new NeuropruneError((code as ErrorCode) ?? 'E_TORCH', error.message, { cause: error });
  }
  return new NeuropruneError('E_TORCH', String(error));
}

/** Awaits a native call, rethrowing its error as a NeuropruneError. */
export async function nativeCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw toNeuropruneError(error);
  }
}
