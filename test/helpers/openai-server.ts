// lives in harness/ so benchmarks can start one without importing test/
export { OpenAIServer, type RecordedRequest, type ScriptedAnswer } from "../../harness/index.js";
