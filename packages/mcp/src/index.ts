/** `@allowance/mcp`: MCP servers over Streamable HTTP, protected by Allowance grants. */
export { MCP_DENIAL_CODES, createMcpGuard } from "./guard.js";
export type {
  FetchServe,
  McpAllowance,
  McpAnswer,
  McpAuthentication,
  McpDenialCode,
  McpGuard,
  McpGuardOptions,
  McpRequestHead,
  NodeServe,
} from "./guard.js";
export { WELL_KNOWN_PATH } from "./metadata.js";
export type { ProtectedResourceMetadata } from "./metadata.js";
export { DPOP_ALGORITHMS, createDpopProof } from "./dpop.js";
export type { DpopClaims, DpopProofOptions } from "./dpop.js";
export { proofFetch } from "./client.js";
export type { ProofFetchOptions, ProofScheme } from "./client.js";
