/**
 * OAuth 2.0 Protected Resource Metadata (RFC 9728) for an MCP endpoint, and the `WWW-Authenticate`
 * challenges that point to it (MCP authorization, 2025-11-25, "Protected Resource Metadata
 * Discovery Requirements" and "Scope Challenge Handling").
 */
import { DPOP_ALGORITHMS } from "./dpop.js";

export const WELL_KNOWN_PATH = "/.well-known/oauth-protected-resource";

/** The metadata document (RFC 9728 §2), with the members this resource can state. */
export interface ProtectedResourceMetadata {
  readonly resource: string;
  /** The issuers of grants: who to ask for a token (the MCP spec requires at least one). */
  readonly authorization_servers: readonly string[];
  readonly bearer_methods_supported: readonly ["header"];
  readonly dpop_signing_alg_values_supported: readonly string[];
  /** Every accepted credential is bound to its holder's key: no bearer token is ever served. */
  readonly dpop_bound_access_tokens_required: true;
  readonly scopes_supported?: readonly string[];
  readonly resource_name?: string;
  /** Extension: the key ids (RFC 7638 thumbprints) of the trusted roots a grant must chain to. */
  readonly allowance_root_kids: readonly string[];
}

/**
 * The well-known URL of the metadata (RFC 9728 §3.1): the well-known path inserted between the
 * host and the resource's path, so `https://h/mcp` has `https://h/.well-known/oauth-protected-resource/mcp`.
 */
export function metadataUrl(resource: URL): URL {
  const path = resource.pathname === "/" ? "" : resource.pathname;
  return new URL(WELL_KNOWN_PATH + path, resource.origin);
}

/** One auth-param value as a quoted-string: printable ASCII without `"` or `\`, at most 200 characters. */
export function quoted(text: string): string {
  return `"${text.replace(/[^\x20-\x7e]|["\\]/g, "").slice(0, 200)}"`;
}

export function dpopAlgorithms(): string {
  return DPOP_ALGORITHMS.join(" ");
}
