/** JSON forms of grants, for vectors, the CLI and logs: byte strings as base64url. */
import { toBase64url } from "./bytes.js";
import type { EffectiveGrant, GrantFields, LinkGrant } from "./grant.js";

export type GrantJSON = GrantFields & { sub: string; nonce: string };
export type EffectiveGrantJSON = Omit<EffectiveGrant, "holder"> & { holder: string };

export function grantToJSON(grant: LinkGrant): GrantJSON {
  return { ...grant, sub: toBase64url(grant.sub), nonce: toBase64url(grant.nonce) };
}

export function effectiveToJSON(grant: EffectiveGrant): EffectiveGrantJSON {
  return { ...grant, holder: toBase64url(grant.holder) };
}
