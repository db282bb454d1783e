/** The leak matrix through the official `@anthropic-ai/sdk` client: messages, JSON and streamed. */
import { SDK_CASES } from "./clients.js";
import { leakMatrix } from "./scenarios.js";

leakMatrix({ title: "anthropic SDK", cases: SDK_CASES.anthropic });
