/** The leak matrix through the official `openai` client: chat, responses, legacy completions, embeddings; AzureOpenAI; and the client on Gemini's OpenAI-compatible base. */
import { SDK_CASES } from "./clients.js";
import { leakMatrix } from "./scenarios.js";

leakMatrix({
  title: "openai SDK",
  cases: [...SDK_CASES.openai, ...SDK_CASES.azure, ...SDK_CASES.geminiOpenAi],
});
