/** The leak matrix through the AI SDK (`ai` 6): generateText, streamText and embed over OpenAI, Anthropic and Gemini. */
import { SDK_CASES } from "./clients.js";
import { leakMatrix } from "./scenarios.js";

leakMatrix({ title: "AI SDK", cases: SDK_CASES.ai });
