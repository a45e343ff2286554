/**
 * Files of a model folder that the TypeScript side reads (tokenizer files, the side files `save`
 * copies), checked by the core's own rule (native/core/checkpoint/files.h): a regular file (a FIFO or
 * /dev/zero would hang or fill memory), inside the model folder once symlinks are resolved (or inside
 * its HF cache repository, whose snapshots link into blobs/), and not larger than a bound.
 */
import { ErrorCode, NeuropruneError, toNeuropruneError } from './errors';
import { native } from './native';

/** Throws `code` naming the file unless it is a regular file inside the model folder, at most maxBytes. */
export function checkModelFile(dir: string, file: string, code: ErrorCode, maxBytes = 1 << 30): void {
  let size: number;
  try {
    size = native().checkModelFile(dir, file, code);
  } catch (error) {
    throw toNeuropruneError(error);
  }
  if (size > maxBytes) throw new NeuropruneError(code, `${file}: ${size} bytes, more than the ${maxBytes} allowed`);
}
