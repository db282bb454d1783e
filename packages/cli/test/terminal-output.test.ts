/**
 * What a token's maker writes (a label, an argument's value, an audience) reaches an operator's
 * terminal through `inspect` and `verify`: characters that would act on the terminal (C0 and C1
 * controls, DEL) or turn the text around them (bidi controls, invisible formatting) are shown
 * escaped, never written raw.
 */
import { writeFileSync } from "node:fs";
import {
  exportPublicJwk,
  formatToken,
  generateKeyPair,
  mint,
  publicKeyOf,
  type GrantFields,
} from "@allowance/core";
import { afterAll, describe, expect, it } from "vitest";
import { describeGrant, printable, quoted } from "../src/describe.js";
import { allowance, expectSuccess, tempDir } from "./support.js";

const tmp = tempDir();
afterAll(() => tmp.remove());

const HOSTILE = "ops\u001b[2J\u202eevil\u0085\u009b2J\u2066\u200b\u007f\u2028";
/** Any code point a terminal acts on, or that turns or hides text (a line break aside). */
const RAW = /(?!\n)[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u;

describe("text from a token, shown to a person", () => {
  it("is escaped by quoted() and printable(), whatever it holds", () => {
    expect(quoted(HOSTILE)).toBe(
      '"ops\\u001b[2J\\u202eevil\\u0085\\u009b2J\\u2066\\u200b\\u007f\\u2028"',
    );
    expect(printable("a\u202eb")).toBe("a\\u202eb");
    // Characters known to show as nothing, or as a plain space, each checked by hand: fillers,
    // variation selectors, the grapheme joiner, unassigned tags, spaces other than the space.
    for (const c of [
      0x3164, 0xfe0f, 0xe0100, 0x034f, 0xe0080, 0x3000, 0x00a0, 0x00ad, 0x200b, 0x2060, 0x115f,
      0x1160, 0xffa0, 0x180b, 0x2800, 0x2007, 0xf8ff, 0x1d173,
    ])
      expect(quoted(`a${String.fromCodePoint(c)}b`), `U+${c.toString(16)}`).toMatch(
        /^"a\\u(\{[0-9a-f]+\}|[0-9a-f]{4})b"$/,
      );
    expect(quoted("a b")).toBe('"a b"');
    for (const c of [0x1d159, 0x16fe4])
      expect(quoted(`a${String.fromCodePoint(c)}b`)).toBe(`"a\\u{${c.toString(16)}}b"`);
    // What shows as one character stays as it is: an emoji's presentation selector, an ideograph's
    // variant, a joiner between pictographs, skin tones, keycaps, flags, accents, CJK.
    for (const ordinary of [
      "❤️ love",
      "1️⃣",
      "葛󠄀城市",
      "👩‍💻 dev",
      "👩🏽‍💻",
      "🇫🇷",
      "café",
      "東京",
      "naïve résumé",
    ])
      expect(quoted(ordinary), ordinary).toBe(JSON.stringify(ordinary));
    // A selector after a digit, # or * (but in a keycap), or an ideograph's variant after anything
    // else, could hide a byte in text that reads the same: escaped.
    expect(quoted("budget 2\u{e0148}0")).toBe('"budget 2\\u{e0148}0"');
    expect(quoted("#\ufe00x")).toBe('"#\\ufe00x"');
    expect(quoted("1\ufe0f")).toBe('"1\\ufe0f"');
    // © is a pictograph: ©️ is its emoji form, shown as itself.
    expect(quoted("©\ufe0f")).toBe('"©\ufe0f"');
    expect(quoted("❤\u{e0100}")).toBe('"❤\\u{e0100}"');
    // A selector or a joiner anywhere else is escaped.
    expect(quoted("a\ufe0fb")).toBe('"a\\ufe0fb"');
    expect(quoted("a\u200db")).toBe('"a\\u200db"');
    expect(quoted("👩\u200db")).toBe('"👩\\u200db"');
    // Shown without quotes, a backslash is doubled: text that spells an escape never reads as one.
    expect(printable("api\u200b.example")).toBe("api\\u200b.example");
    expect(printable("api\\u200b.example")).toBe("api\\\\u200b.example");
    // Invisible formatting, astral tags and the rest of the format and control categories too.
    expect(printable("pay\u00adpal \u{e0041}\u{e0042} \u180e\ufff9")).toBe(
      "pay\\u00adpal \\u{e0041}\\u{e0042} \\u180e\\ufff9",
    );
    for (let c = 0; c <= 0x10ffff; c++) {
      const shown = quoted(String.fromCodePoint(c));
      if (RAW.test(shown)) throw new Error(`U+${c.toString(16)} shown raw: ${shown}`);
    }
    const grant: GrantFields = {
      label: HOSTILE,
      aud: [`https://tools.example/${"\u202e"}`],
      args: [
        {
          tool: "send",
          constraints: [
            { name: "to", kind: "exact", value: HOSTILE },
            { name: "path", kind: "prefix", prefix: "\u009b" },
          ],
        },
      ],
    } as GrantFields;
    for (const line of describeGrant(grant)) expect(RAW.test(line), line).toBe(false);
  });

  it("reaches the terminal escaped through inspect and verify", async () => {
    const root = await generateKeyPair();
    const agent = await generateKeyPair();
    const token = mint({
      rootKey: root,
      holder: publicKeyOf(agent),
      grant: { exp: Math.floor(Date.now() / 1000) + 3600, label: HOSTILE },
    });
    writeFileSync(tmp.path("t.token"), formatToken(token));
    writeFileSync(tmp.path("root.jwk"), JSON.stringify(exportPublicJwk(publicKeyOf(root))));
    for (const args of [
      ["inspect", `@${tmp.path("t.token")}`],
      ["verify", `@${tmp.path("t.token")}`, "--roots", tmp.path("root.jwk")],
    ]) {
      const run = allowance(args);
      expectSuccess(run);
      expect(RAW.test(run.stdout), args[0]).toBe(false);
      expect(run.stdout).toContain("\\u001b[2J\\u202eevil");
    }
  });
});
