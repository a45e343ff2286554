/** Text <-> token ids through tokenizer.json, with Hugging Face's own JS tokenizers library. */
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import vm from 'node:vm';
import { Tokenizer } from '@huggingface/tokenizers';
import { NeuropruneError } from './errors';
import { checkModelFile } from './files';

export class TextTokenizer {
  private constructor(
    private readonly inner: Tokenizer,
    /** End-of-sequence id from tokenizer_config.json's eos_token, when it names one. */
    readonly eosId: number | undefined,
    /** Where it was loaded from, for messages. */
    readonly source: string,
  ) {}

  /** Loads DIR/tokenizer.json (and DIR/tokenizer_config.json when present). */
  static async fromDir(dir: string): Promise<TextTokenizer> {
    const file = path.join(dir, 'tokenizer.json');
    const json = (await readJson(dir, file, true))!;
    const config = (await readJson(dir, path.join(dir, 'tokenizer_config.json'), false)) ?? {};
    return TextTokenizer.fromJson(json, config, file);
  }

  static fromJson(json: object, config: Record<string, unknown>, source: string): TextTokenizer {
    let inner: Tokenizer;
    try {
      inner = new Tokenizer(json, config);
    } catch (error) {
      throw new NeuropruneError('E_TOKENIZER', `${source}: cannot build the tokenizer (${(error as Error).message})`);
    }
    const eos = typeof config.eos_token === 'string' ? config.eos_token : (config.eos_token as { content?: string })?.content;
    const tokenizer = new TextTokenizer(inner, eos === undefined ? undefined : inner.token_to_id(eos), source);
    // A tokenizer that loads but cannot encode (a post-processor missing its fields, say) fails here, not at every call.
    tokenizer.encode('Hello, world 123');
    return tokenizer;
  }

  /** The byte-level tokenizer that `neuroprune init` writes and `random:` models use. */
  static byteLevel(): TextTokenizer {
    return TextTokenizer.fromJson(byteLevelTokenizerJson(), byteLevelTokenizerConfig(), 'byte-level tokenizer');
  }

  /**
   * Token ids; `addSpecialTokens` (default true) adds what the tokenizer's post-processor adds, e.g. BOS.
   * Texts over MAX_TEXT_CHARS are E_RANGE before tokenizing; a tokenizer that takes longer than
   * 2 s + 10 ms per 1,000 characters (a backtracking pre-tokenizer pattern) is stopped with E_TOKENIZER.
   */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    if (typeof text !== 'string') throw new NeuropruneError('E_ARG', `text to tokenize must be a string, got ${text === null ? 'null' : typeof text}`);
    if (text.length > MAX_TEXT_CHARS) {
      throw new NeuropruneError('E_RANGE', `a text of ${text.length} characters is longer than the ${MAX_TEXT_CHARS} a prompt may have`);
    }
    const limit = 2000 + text.length / 100;
    return this.guarded(`tokenizing a text of ${text.length} characters`, limit, () => this.inner.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids);
  }

  /** Token ids with the tokenizer's own token strings (e.g. "Ġcat", "##s", "</s>"), special tokens added. */
  encodeTokens(text: string): { ids: number[]; tokens: string[] } {
    const ids = this.encode(text);  // the checks and the time limit
    const tokens = this.guarded(`tokenizing a text of ${text.length} characters`, 2000 + text.length / 100, () => this.inner.encode(text).tokens);
    return { ids, tokens };
  }

  decode(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return '';
    return this.guarded(`decoding ${ids.length} tokens`, 2000 + ids.length, () => this.inner.decode(Array.from(ids), { skip_special_tokens: options.skipSpecialTokens ?? false }));
  }

  /** Runs the JS tokenizer under a time limit; its own failures become E_TOKENIZER naming the file. */
  private guarded<T>(what: string, limitMs: number, run: () => T): T {
    guard.context.run = run;
    try {
      return guard.script.runInContext(guard.context, { timeout: Math.ceil(limitMs) }) as T;
    } catch (error) {
      if (error instanceof NeuropruneError) throw error;
      if ((error as { code?: string }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') {
        throw new NeuropruneError('E_TOKENIZER', `${this.source}: ${what} took more than ${Math.ceil(limitMs)} ms (a pathological pre-tokenizer pattern?)`);
      }
      throw new NeuropruneError('E_TOKENIZER', `${this.source}: ${what} failed (${(error as Error)?.message ?? String(error)})`, { cause: error });
    } finally {
      guard.context.run = undefined;
    }
  }

  tokenToId(token: string): number | undefined {
    return this.inner.token_to_id(token);
  }
}

/** The longest text encode accepts: far past any model's context, far below what exhausts the heap. */
export const MAX_TEXT_CHARS = 4_000_000;

/** vm's timeout interrupts synchronous JS, a runaway regular expression included. */
const guard = { context: vm.createContext({ run: undefined as unknown }), script: new vm.Script('run()') };

/** Real tokenizer.json files are up to a few tens of MB (large vocabularies). */
const MAX_TOKENIZER_BYTES = 256 << 20;

async function readJson(dir: string, file: string, required: boolean): Promise<Record<string, unknown> | undefined> {
  if (!fsSync.existsSync(file)) {
    if (!required) return undefined;
    throw new NeuropruneError('E_TOKENIZER', `${file}: tokenizer file is missing or unreadable`);
  }
  checkModelFile(dir, file, 'E_TOKENIZER', MAX_TOKENIZER_BYTES);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    if (!required) return undefined;
    throw new NeuropruneError('E_TOKENIZER', `${file}: tokenizer file is missing or unreadable`);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new NeuropruneError('E_TOKENIZER', `${file}: not JSON (${(error as Error).message})`);
  }
}

export const BYTE_LEVEL_EOS = '<|endoftext|>';
/** Id of the byte-level tokenizer's end-of-text token: right after the 256 bytes. */
export const BYTE_LEVEL_EOS_ID = 256;

/** GPT-2's reversible byte -> printable character map (bytes_to_unicode). */
function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const map: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) map[b] = String.fromCodePoint(printable.includes(b) ? b : 256 + extra++);
  return map;
}

/** A GPT-2 style byte-level BPE tokenizer.json with one token per byte and no merges. */
export function byteLevelTokenizerJson(): object {
  const vocab: Record<string, number> = {};
  bytesToUnicode().forEach((ch, b) => (vocab[ch] = b));
  vocab[BYTE_LEVEL_EOS] = BYTE_LEVEL_EOS_ID;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { id: BYTE_LEVEL_EOS_ID, content: BYTE_LEVEL_EOS, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true },
    ],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

export function byteLevelTokenizerConfig(): Record<string, unknown> {
  return {
    tokenizer_class: 'GPT2Tokenizer',
    bos_token: BYTE_LEVEL_EOS,
    eos_token: BYTE_LEVEL_EOS,
    unk_token: BYTE_LEVEL_EOS,
    add_prefix_space: false,
    clean_up_tokenization_spaces: false,
    model_max_length: 1024,
  };
}
