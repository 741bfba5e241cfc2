// The reference document's examples (GIE's "Supported Model Servers"), from the excerpt committed under
// tests/fixtures/ so that tests never depend on a file outside the repository. Paths are relative to the
// repository root, the working directory of `make test`.
import { readFileSync } from "node:fs";

/** The committed excerpt: one header line saying where it comes from, then the document's text verbatim. */
export const REFERENCE_EXCERPT = "tests/fixtures/supported-model-servers.excerpt.md";
/** The live reference document, in the sibling folder ../shared when it is checked out beside the repository. */
export const SHARED_DIR = "../shared";
export const REFERENCE_LIVE = `${SHARED_DIR}/reference/supported-model-servers.md`;

/** The excerpt's text without its header line: a verbatim slice of the reference document. */
export function referenceExcerpt(): string {
  const text = readFileSync(REFERENCE_EXCERPT, "utf8");
  const newline = text.indexOf("\n");
  if (!text.startsWith("<!-- ") || newline < 0 || !text.slice(0, newline).includes(REFERENCE_LIVE)) {
    throw new Error(`${REFERENCE_EXCERPT}: the first line must be a comment naming ${REFERENCE_LIVE}`);
  }
  return text.slice(newline + 1);
}

/** The contents of every fenced code block of a Markdown text, in order (fences and info strings excluded). */
export function codeBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```\w*\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
}
