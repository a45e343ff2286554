/** Text <-> token ids through tokenizer.json, with Hugging Face's own JS tokenizers library. */
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
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
    return new TextTokenizer(inner, eos === undefined ? undefined : inner.token_to_id(eos), source);
  }

  /** The byte-level tokenizer that `neuroprune init` writes and `random:` models use. */
  static byteLevel(): TextTokenizer {
    return TextTokenizer.fromJson(byteLevelTokenizerJson(), byteLevelTokenizerConfig(), 'byte-level tokenizer');
  }

  /** Token ids; `addSpecialTokens` (default true) adds what the tokenizer's post-processor adds, e.g. BOS. */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    return this.inner.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  decode(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return '';
    return this.inner.decode(Array.from(ids), { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.inner.token_to_id(token);
  }
}

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
