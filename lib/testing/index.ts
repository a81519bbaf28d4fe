export { codecConformance } from './codec-conformance.js';
export type {
  ConformanceCheck, ConformanceOptions, ConformanceSubject, ReferenceFormat, ReferenceFrame, ReferenceParse, StreamOutcome,
} from './codec-conformance.js';
