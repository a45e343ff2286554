/** Circuit algorithms on a graph's masks and scores: pure functions, no model. */
export { allEdges, checkGraph, countEdges, edgeName, layerOf, nodeIndex, nodeOf, standardGraph } from './graph';
export { edgesAbove, pruneDeadNodes, rankEdges, selectCircuit, topEdges } from './select';
export { circuitNodes, faithfulness, hits, mean, nodeScores, overlap, randomCircuit, rocAuc } from './measures';
export type { Faithfulness, NodeScore } from './measures';
export { acdc } from './acdc';
export type { AcdcOptions, AcdcResult } from './acdc';
export { circuitDot } from './dot';
