/**
 * The token inspector page as `allowance inspect --html` writes it. The page is built from
 * packages/cli/inspector/ by scripts/build-inspector.ts into inspector-html.ts (generated, with a
 * test that fails when it is stale); here only the token is filled in.
 */
import { INSPECTOR_PAGE } from "./inspector-html.js";

const ENTITIES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/**
 * The page, with `tokenText` as the token field's initial text. A textarea's content is text, not
 * markup, once escaped; the page's script hashes in its CSP do not depend on it.
 */
export function inspectorPage(tokenText = ""): string {
  if (typeof tokenText !== "string")
    throw new TypeError(`"tokenText" must be a string, got ${typeof tokenText}`);
  const escaped = tokenText.replace(/[&<>"']/g, (c) => ENTITIES[c] as string);
  return INSPECTOR_PAGE.beforeToken + escaped + INSPECTOR_PAGE.afterToken;
}
