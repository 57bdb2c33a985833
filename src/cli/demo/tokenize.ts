// The demo's tokenizer, shared by the command line (src/cli/cli.ts) and the browser page
// (examples/browser): Unicode word segmentation (Intl.Segmenter), so words, punctuation, emoji
// sequences and Chinese or Japanese words each become one token, whitespace none.

/** The most tokens the demo accepts: each layer keeps H·N² weights, so N is bounded. */
export const MAX_TOKENS = 256;

// The root locale ("und"), not the runtime's default: the same text gives the same tokens on every
// machine.
const words = new Intl.Segmenter("und", { granularity: "word" });

export function tokenize(text: string): string[] {
  const tokens: string[] = [];
  for (const { segment } of words.segment(text)) {
    if (segment.trim() !== "") tokens.push(segment);
  }
  return tokens;
}
