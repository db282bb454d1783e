/** `@allowance/mcp`: MCP servers over Streamable HTTP, protected by Allowance grants. */
export {};
