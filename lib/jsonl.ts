/** JSON Lines files validated line by line; errors name the file, the line and the field. */
import fs from 'node:fs';
import { z } from 'zod';
import { ErrorCode, NeuropruneError } from './errors';

export function readJsonLines<T extends z.ZodTypeAny>(file: string, schema: T, code: ErrorCode): Array<{ line: number; value: z.infer<T> }> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new NeuropruneError(code, `${file}: cannot read (${(error as Error).message})`);
  }
  const out: Array<{ line: number; value: z.infer<T> }> = [];
  text.split('\n').forEach((raw, i) => {
    if (!raw.trim()) return;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch (error) {
      throw new NeuropruneError(code, `${file}:${i + 1}: not JSON (${(error as Error).message})`);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new NeuropruneError(code, `${file}:${i + 1}: ${issue.path.join('.') || 'line'}: ${issue.message}`);
    }
    out.push({ line: i + 1, value: parsed.data });
  });
  if (out.length === 0) throw new NeuropruneError(code, `${file}: no lines`);
  return out;
}
