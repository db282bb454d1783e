/**
 * A few top-level members of a JSON object, read without building the rest. The meter needs only
 * the usage of an answer; JSON.parse of a whole answer builds every object in it, which costs
 * several times more than checking the text. The whole text is checked against the JSON grammar
 * (RFC 8259) as JSON.parse checks it, and only the named members' values are parsed, by JSON.parse,
 * so they are exactly what JSON.parse of the whole text would hold: the last of duplicate keys, a
 * key written with escapes (`"usag\u0065"`) read as the key it spells.
 */

/** Whether the string skipString last read held an escape (then a key is compared unescaped). */
let escaped = false;

/**
 * The top-level members of `text` named in `keys`, in an object without a prototype (absent ones
 * left out), or undefined when `text` is not a JSON object: malformed JSON, or another JSON value.
 */
export function jsonMembers(
  text: string,
  keys: readonly string[],
): Record<string, unknown> | undefined {
  let i = skipWhitespace(text, 0);
  if (text.charCodeAt(i) !== 123) return undefined;
  // Where each wanted value starts and ends: the last occurrence wins, as in JSON.parse.
  let found: [key: string, start: number, end: number][] | undefined;
  i = skipWhitespace(text, i + 1);
  if (text.charCodeAt(i) === 125) i++;
  else {
    for (;;) {
      if (text.charCodeAt(i) !== 34) return undefined;
      const keyEnd = skipString(text, i);
      if (keyEnd < 0) return undefined;
      const key = wanted(text, i, keyEnd, escaped, keys);
      let start = skipWhitespace(text, keyEnd);
      if (text.charCodeAt(start) !== 58) return undefined;
      start = skipWhitespace(text, start + 1);
      const end = skipValue(text, start);
      if (end < 0) return undefined;
      if (key !== undefined) (found ??= []).push([key, start, end]);
      i = skipWhitespace(text, end);
      const c = text.charCodeAt(i);
      if (c === 44) i = skipWhitespace(text, i + 1);
      else if (c === 125) {
        i++;
        break;
      } else return undefined;
    }
  }
  if (skipWhitespace(text, i) !== text.length) return undefined;
  const members = Object.create(null) as Record<string, unknown>;
  if (found !== undefined)
    for (const [key, start, end] of found) members[key] = JSON.parse(text.slice(start, end));
  return members;
}

/** The key of the string text[start, end) when it is one of `keys`. */
function wanted(
  text: string,
  start: number,
  end: number,
  hasEscape: boolean,
  keys: readonly string[],
): string | undefined {
  if (hasEscape) {
    const key = JSON.parse(text.slice(start, end)) as string;
    return keys.includes(key) ? key : undefined;
  }
  const length = end - start - 2;
  for (const key of keys) if (key.length === length && text.startsWith(key, start + 1)) return key;
  return undefined;
}

function skipWhitespace(text: string, i: number): number {
  for (;;) {
    const c = text.charCodeAt(i);
    if (c === 32 || c === 10 || c === 13 || c === 9) i++;
    else return i;
  }
}

const isHex = (c: number): boolean => (c >= 48 && c <= 57) || ((c | 32) >= 97 && (c | 32) <= 102);

/** The index after the string whose opening quote is at `i`, or -1. Sets `escaped`. */
function skipString(text: string, i: number): number {
  escaped = false;
  for (let j = i + 1; ; j++) {
    const c = text.charCodeAt(j);
    if (c === 34) return j + 1;
    if (c === 92) {
      escaped = true;
      const e = text.charCodeAt(++j);
      if (e === 117) {
        for (let k = 0; k < 4; k++) if (!isHex(text.charCodeAt(++j))) return -1;
      } else if (
        e !== 34 &&
        e !== 92 &&
        e !== 47 &&
        e !== 98 &&
        e !== 102 &&
        e !== 110 &&
        e !== 114 &&
        e !== 116
      )
        return -1;
    }
    // A control character, or the end of the text (NaN).
    else if (!(c >= 32)) return -1;
  }
}

const isDigit = (c: number): boolean => c >= 48 && c <= 57;

/** The index after the number at `i`: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?, or -1. */
function skipNumber(text: string, i: number): number {
  let c = text.charCodeAt(i);
  if (c === 45) c = text.charCodeAt(++i);
  if (c === 48) c = text.charCodeAt(++i);
  else if (c >= 49 && c <= 57) {
    do c = text.charCodeAt(++i);
    while (isDigit(c));
  } else return -1;
  if (c === 46) {
    if (!isDigit(text.charCodeAt(++i))) return -1;
    do c = text.charCodeAt(++i);
    while (isDigit(c));
  }
  if (c === 101 || c === 69) {
    c = text.charCodeAt(++i);
    if (c === 43 || c === 45) c = text.charCodeAt(++i);
    if (!isDigit(c)) return -1;
    do c = text.charCodeAt(++i);
    while (isDigit(c));
  }
  return i;
}

/** At a member's key (its opening quote at `i`): the index where its value starts, or -1. */
function memberValue(text: string, i: number): number {
  if (text.charCodeAt(i) !== 34) return -1;
  i = skipString(text, i);
  if (i < 0) return -1;
  i = skipWhitespace(text, i);
  if (text.charCodeAt(i) !== 58) return -1;
  return skipWhitespace(text, i + 1);
}

/** The index after the JSON value at `i`, or -1. Nesting is followed with a stack, not recursion. */
function skipValue(text: string, i: number): number {
  // One entry per open container: true for an object, false for an array.
  let open: boolean[] | undefined;
  for (;;) {
    const c = text.charCodeAt(i);
    if (c === 34) i = skipString(text, i);
    else if (c === 123 || c === 91) {
      const object = c === 123;
      i = skipWhitespace(text, i + 1);
      if (text.charCodeAt(i) === (object ? 125 : 93)) i++;
      else {
        (open ??= []).push(object);
        if (object && (i = memberValue(text, i)) < 0) return -1;
        continue;
      }
    } else if (c === 116) i = text.startsWith("true", i) ? i + 4 : -1;
    else if (c === 102) i = text.startsWith("false", i) ? i + 5 : -1;
    else if (c === 110) i = text.startsWith("null", i) ? i + 4 : -1;
    else i = skipNumber(text, i);
    if (i < 0) return -1;
    // After a value: the next element or member, or the end of open containers.
    for (;;) {
      if (open === undefined || open.length === 0) return i;
      i = skipWhitespace(text, i);
      const d = text.charCodeAt(i);
      const object = open[open.length - 1] as boolean;
      if (d === 44) {
        i = skipWhitespace(text, i + 1);
        if (object && (i = memberValue(text, i)) < 0) return -1;
        break;
      }
      if (d !== (object ? 125 : 93)) return -1;
      open.pop();
      i++;
    }
  }
}
