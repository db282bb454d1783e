/** An in-process MCP client on the CLI's server, for tests that call its tools. */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { createMcpServer, type McpContext } from "../src/mcp.js";

/** A client connected to a server made from `context`, its tools listed. */
export async function connectMcp(context: McpContext): Promise<Client> {
  const server = createMcpServer(context);
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const client = new Client({ name: "allowance-test", version: "0.0.0" });
  await client.connect(clientSide);
  // Listed first: the client then validates every structuredContent against the tool's outputSchema.
  await client.listTools();
  return client;
}
