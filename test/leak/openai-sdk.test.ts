/** The leak matrix through the official `openai` client: chat, responses, legacy completions, embeddings; and AzureOpenAI. */
import { SDK_CASES } from "./clients.js";
import { leakMatrix } from "./scenarios.js";

leakMatrix({ title: "openai SDK", cases: [...SDK_CASES.openai, ...SDK_CASES.azure] });
