/**
 * Text a person reads in a terminal or a report, from whoever made a token or a request (labels,
 * argument values, audiences, models, tools): what would act on the terminal or change how the
 * text reads is shown escaped. The CLI's descriptions (and the inspector page built from them)
 * and the meter's usage report use it alike.
 */
/**
 * Code points that act on a terminal rather than show, or change how the text around them reads:
 * controls (C0, DEL, C1), formatting characters (bidirectional controls, zero-width and invisible
 * ones, tags), every code point Unicode says to ignore by default (variation selectors, fillers),
 * lone surrogates, private-use and unassigned code points, other blanks (the braille blank, a null
 * notehead, the Khitan filler), and every separator but the plain space.
 */
const UNPRINTABLE =
  /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}\u2800\u{1d159}\u{16fe4}]|[^\P{Zs} ]/gu;
/** An emoji's or text's presentation selector, and what it may follow and still show as itself. */
const PRESENTATION = /^[\ufe0e\ufe0f]$/u;
const PRESENTED = /\p{Extended_Pictographic}$/u;
const KEYCAP_BASE = /[0-9#*]$/u;
/** An ideograph's variation selector, and the ideograph it may follow. */
const VARIANT = /^[\ufe00-\ufe0f\u{e0100}-\u{e01ef}]$/u;
const IDEOGRAPH = /\p{Ideographic}$/u;
const PICTOGRAPH_BEFORE = /\p{Extended_Pictographic}[\ufe0f\u{1f3fb}-\u{1f3ff}]?$/u;
const PICTOGRAPH_AFTER = /^\p{Extended_Pictographic}/u;

/**
 * `text` with each UNPRINTABLE code point written as an escape (\uXXXX, or \u{XXXXX} past U+FFFF),
 * but a variation selector after an emoji or an ideograph (❤️, 葛󠄀) and a joiner between two
 * pictographs (👩‍💻), which show as one character. `doubled` doubles each backslash first, so that an
 * escape is never confused with text that spells one.
 */
function escaped(text: string, doubled: boolean): string {
  const pattern = doubled ? UNPRINTABLE_OR_BACKSLASH : UNPRINTABLE;
  return text.replace(pattern, (c: string, at: number) => {
    if (c === "\\") return "\\\\";
    const before = text.slice(Math.max(0, at - 4), at);
    // A presentation selector after a pictograph, or making a keycap (1️⃣); an ideograph's variant.
    if (
      PRESENTATION.test(c) &&
      (PRESENTED.test(before) ||
        (KEYCAP_BASE.test(before) && text.charCodeAt(at + c.length) === 0x20e3))
    )
      return c;
    if (VARIANT.test(c) && IDEOGRAPH.test(before)) return c;
    if (
      c === "\u200d" &&
      PICTOGRAPH_BEFORE.test(before) &&
      PICTOGRAPH_AFTER.test(text.slice(at + 1, at + 3))
    )
      return c;
    const code = c.codePointAt(0) as number;
    return code > 0xffff ? `\\u{${code.toString(16)}}` : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}
const UNPRINTABLE_OR_BACKSLASH = new RegExp(`\\\\|${UNPRINTABLE.source}`, "gu");

/** Text shown as it is, with its unprintable code points escaped and its backslashes doubled. */
export function printable(text: string): string {
  return escaped(text, true);
}

/** A string as JSON quotes it, with what JSON leaves raw but a terminal acts on escaped too. */
export function quoted(text: string): string {
  return escaped(JSON.stringify(text), false);
}
