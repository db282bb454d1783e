/**
 * A strict JSON reader for request bodies whose arguments are checked (spec/arguments.md §6.4).
 * `JSON.parse` keeps the last of two equal member names; other parsers keep the first. A body that
 * names an argument twice can therefore be checked with one value and executed with the other, so
 * this reader refuses duplicates (compared after unescaping, at every depth), as well as lone
 * surrogates, nesting deeper than `maxDepth` and anything RFC 8259 does not allow.
 *
 * Objects come back with a null prototype, so a member named `__proto__` is an ordinary member.
 */

export type StrictJsonResult =
  { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly message: string };

class Refusal {
  constructor(readonly message: string) {}
}

function refuse(message: string): never {
  throw new Refusal(message);
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

/** Reads `text` as exactly one JSON value, or says why not. Never throws for any string. */
export function parseStrictJson(text: string, maxDepth = 64): StrictJsonResult {
  let pos = 0;

  const space = () => {
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) pos++;
      else return;
    }
  };

  const string = (): string => {
    // At the opening quote.
    pos++;
    let out = "";
    let start = pos;
    for (;;) {
      if (pos >= text.length) refuse("unterminated string");
      const c = text.charCodeAt(pos);
      if (c === 0x22) {
        out += text.slice(start, pos);
        pos++;
        if (!out.isWellFormed()) refuse("lone surrogate in a string");
        return out;
      }
      if (c < 0x20) refuse("control character in a string");
      if (c !== 0x5c) {
        pos++;
        continue;
      }
      out += text.slice(start, pos);
      const e = text[pos + 1];
      pos += 2;
      switch (e) {
        case '"':
          out += '"';
          break;
        case "\\":
          out += "\\";
          break;
        case "/":
          out += "/";
          break;
        case "b":
          out += "\b";
          break;
        case "f":
          out += "\f";
          break;
        case "n":
          out += "\n";
          break;
        case "r":
          out += "\r";
          break;
        case "t":
          out += "\t";
          break;
        case "u": {
          const hex = text.slice(pos, pos + 4);
          if (!/^[0-9A-Fa-f]{4}$/.test(hex)) refuse("malformed \\u escape");
          out += String.fromCharCode(parseInt(hex, 16));
          pos += 4;
          break;
        }
        default:
          refuse("unknown escape");
      }
      start = pos;
    }
  };

  const value = (depth: number): unknown => {
    space();
    const c = text[pos];
    if (c === '"') return string();
    if (c === "{" || c === "[") {
      if (depth >= maxDepth) refuse(`nested deeper than ${maxDepth}`);
      pos++;
      space();
      if (c === "[") {
        const items: unknown[] = [];
        if (text[pos] === "]") {
          pos++;
          return items;
        }
        for (;;) {
          items.push(value(depth + 1));
          space();
          const next = text[pos++];
          if (next === "]") return items;
          if (next !== ",") refuse("expected , or ]");
        }
      }
      const object: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
      if (text[pos] === "}") {
        pos++;
        return object;
      }
      for (;;) {
        space();
        if (text[pos] !== '"') refuse("expected a member name");
        const name = string();
        if (Object.hasOwn(object, name)) refuse(`duplicate member name ${JSON.stringify(name)}`);
        space();
        if (text[pos++] !== ":") refuse("expected :");
        object[name] = value(depth + 1);
        space();
        const next = text[pos++];
        if (next === "}") return object;
        if (next !== ",") refuse("expected , or }");
      }
    }
    if (text.startsWith("true", pos)) {
      pos += 4;
      return true;
    }
    if (text.startsWith("false", pos)) {
      pos += 5;
      return false;
    }
    if (text.startsWith("null", pos)) {
      pos += 4;
      return null;
    }
    NUMBER.lastIndex = pos;
    const match = NUMBER.exec(text);
    if (match === null) refuse("unexpected character");
    pos += match[0].length;
    return Number(match[0]);
  };

  try {
    const result = value(0);
    space();
    if (pos !== text.length) refuse("trailing characters");
    return { ok: true, value: result };
  } catch (error) {
    if (error instanceof Refusal) return { ok: false, message: error.message };
    throw error;
  }
}
