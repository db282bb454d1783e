/**
 * `@allowance/meter/adapters`: for writing or remounting an adapter (docs/metering.md, "Adapters").
 * The built-in adapters in matching order (find one by its `endpoint`, such as
 * `"anthropic.messages"`, to mount it elsewhere), the stated bounds they size requests with, and the
 * hosts and free endpoints the `unmatched` option goes by.
 */
export { BOUND, BUILTIN_ADAPTERS, isFreeEndpoint, isProviderHost } from "./providers.js";
