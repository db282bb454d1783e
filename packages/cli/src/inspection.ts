/**
 * A token's chain as people read it: each link's signer, holder, own grant and what it narrowed,
 * WITHOUT checking signatures. `allowance inspect` prints it and the inspector page (a browser
 * bundle, packages/cli/inspector/) draws it, so this module and what it imports stay free of Node.
 */
import {
  kidOf,
  linkIds,
  type EffectiveGrant,
  type GrantFields,
  type LinkGrant,
  type Token,
  type Violation,
} from "@allowance/core";
import { narrow, rootEffective } from "@allowance/core/format";
import { describeGrant, narrowings, type Narrowing } from "./describe.js";

export interface InspectedLink {
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

/** The links of a parsed token whose grants were read (unverified) by `readUnverifiedGrants`. */
export async function inspectLinks(
  token: Token,
  grants: readonly LinkGrant[],
  rootKid: string,
): Promise<InspectedLink[]> {
  const ids = linkIds(token);
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
  return links;
}
