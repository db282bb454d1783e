/**
 * `@allowance/core/node`: the node:crypto Ed25519 backend, the default on Node. A subpath of its
 * own so that the package's main entry imports no Node built-in (a browser bundle uses the
 * @noble/ed25519 backend, `nobleBackend`).
 */
export { nodeBackend } from "./ed25519/node.js";
