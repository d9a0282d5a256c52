import type { Rule } from './rule.ts';
import { lsnOrder, malformedFrames, pingPong, wellFormed } from './rules-frames.ts';
import { ackLsn, appliedOnce, invalidPayload, operationOrder, patchMerge, patchNonObject, unknownType, write } from './rules-operations.ts';
import { catchUp, lsnBoundary, replay, resetAhead, secondSync } from './rules-sync.ts';

/** Every rule the kit checks, in the order it checks them: the two that judge the whole run last. */
export const RULES: readonly Rule[] = [
  catchUp, pingPong, write, ackLsn, operationOrder, appliedOnce, replay, secondSync, patchMerge, patchNonObject,
  unknownType, invalidPayload, resetAhead, lsnBoundary, malformedFrames, lsnOrder, wellFormed,
];
