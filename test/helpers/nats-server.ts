// the launcher lives in harness/ so benchmarks can start one without importing test/
export { NatsServer } from "../../harness/index.js";
