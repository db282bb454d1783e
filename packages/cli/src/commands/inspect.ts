import {
  kidOf,
  linkIds,
  type EffectiveGrant,
  type GrantFields,
  type Violation,
} from "@allowance/core";
import { encodeToken, narrow, rootEffective, toBase64url } from "@allowance/core/format";
import type { Command } from "commander";
import { describeGrant, describeViolation, narrowings, type Narrowing } from "../describe.js";
import { readGrants, readToken } from "../io.js";
import { emit, exampleHelp } from "../output.js";

interface InspectedLink {
  readonly index: number;
  readonly id: string;
  /** Who signed this link: the root for link 0, else the previous link's holder. */
  readonly signerKid: string;
  readonly holderKid: string;
  /** What this link itself states (exact integers). */
  readonly grant: GrantFields;
  /** The same, in human units. */
  readonly describe: readonly string[];
  /** Fields this link narrows relative to what it would inherit (empty for link 0). */
  readonly narrowed: readonly Narrowing[];
  /** Set when the link is wider than its parent: the chain would fail verification here. */
  readonly violations?: readonly Violation[];
}

export function registerInspect(program: Command): void {
  program
    .command("inspect")
    .description(
      "Show a token's chain as a tree, without checking signatures (no trusted roots needed)",
    )
    .argument("<token>", "the token itself, @file, or - for stdin")
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      exampleHelp("allowance inspect @researcher.token", "allowance mint … | allowance inspect -"),
    )
    .action(async (argument: string, options: { json?: boolean }) => {
      const { text, token } = readToken(argument);
      const grants = readGrants(token);
      const ids = linkIds(token);
      const rootKid = toBase64url(token.rootKid);
      const holderKids = await Promise.all(grants.map((g) => kidOf(g.sub)));
      const links: InspectedLink[] = [];
      let parent: EffectiveGrant | undefined;
      for (const [index, linkGrant] of grants.entries()) {
        const { sub: _sub, nonce: _nonce, ...grant } = linkGrant;
        let narrowed: Narrowing[] = [];
        let violations: readonly Violation[] | undefined;
        if (index === 0) {
          parent = rootEffective(linkGrant);
        } else if (parent !== undefined) {
          narrowed = narrowings(parent, grant);
          const result = narrow(parent, linkGrant);
          if (result.ok) parent = result.effective;
          else {
            violations = result.violations;
            parent = undefined;
          }
        }
        links.push({
          index,
          id: ids[index] as string,
          signerKid: index === 0 ? rootKid : (holderKids[index - 1] as string),
          holderKid: holderKids[index] as string,
          grant,
          describe: describeGrant(grant),
          narrowed,
          ...(violations === undefined ? {} : { violations }),
        });
      }
      const result = {
        signaturesChecked: false,
        rootKid,
        bytes: encodeToken(token).length,
        characters: text.length,
        links,
      };
      emit(options, result, () => describeChain(result));
    });
}

function describeChain(result: {
  rootKid: string;
  bytes: number;
  links: readonly InspectedLink[];
}): string {
  const lines = [
    `token: ${result.links.length} link${result.links.length === 1 ? "" : "s"}, ${result.bytes} bytes — signatures NOT checked (run 'allowance verify --roots …' to check them)`,
    `root ${result.rootKid}`,
  ];
  for (const link of result.links) {
    const pad = "   ".repeat(link.index);
    const body = `${pad}   `;
    lines.push(`${pad}└─ link ${link.index}  id ${link.id}`);
    lines.push(`${body}signed by ${link.index === 0 ? "root " : ""}${link.signerKid}`);
    lines.push(`${body}holder    ${link.holderKid}`);
    lines.push(`${body}grant     ${link.describe.join(" · ") || "(inherits everything)"}`);
    if (link.index > 0) {
      const narrowed = link.narrowed.map((n) => `${n.field} ${n.parent} → ${n.child}`);
      lines.push(`${body}narrowed  ${narrowed.join(" · ") || "(nothing: same as its parent)"}`);
    }
    if (link.violations !== undefined)
      lines.push(
        `${body}WIDER THAN ITS PARENT: ${link.violations.map(describeViolation).join("; ")}`,
      );
  }
  return lines.join("\n");
}
