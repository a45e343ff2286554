// N-API glue for circuits: the graph, edge scores (EAP, EAP-IG), ablated runs and the logit lens; the
// work is in core/circuit.
#pragma once
#include <napi.h>

#include <memory>

#include "common.h"

namespace neuroprune::binding {

// circuitGraph() -> {writers: string[], readers: string[], edges: Uint8Array [W x R]}; sync.
Napi::Value circuit_graph(const Napi::CallbackInfo& info, std::shared_ptr<ModelState> state);

// edgeScores(clean: Int32Array, corrupted: Int32Array, rows, seqLen, metric, {steps, memoryBudgetBytes},
// onProgress?, cancel?) -> Promise<{scores: Float32Array [W x R], metricClean, metricCorrupted, microBatches}>
//   metric: {kind: 'logit_diff'|'logprob'|'kl', answer: Int32Array, wrong?: Int32Array}
Napi::Value edge_scores(const Napi::CallbackInfo& info, std::shared_ptr<ModelState> state);

// ablatedRun(clean: Int32Array, rows, seqLen, kept: Uint8Array [K x W x R], ablation: 'corrupted'|'mean'|'zero',
// corrupted: Int32Array | null, corruptedRows, metric, {topK, memoryBudgetBytes}, cancel?)
// -> Promise<{metric: Float32Array [K x rows], topTokens: Int32Array [K x rows x topK], answerRank: Int32Array [K x rows]}>
Napi::Value ablated_run(const Napi::CallbackInfo& info, std::shared_ptr<ModelState> state);

// logitLens(clean: Int32Array, rows, seqLen, answer: Int32Array, memoryBudgetBytes)
// -> Promise<Int32Array [rows x W]>
Napi::Value logit_lens(const Napi::CallbackInfo& info, std::shared_ptr<ModelState> state);

// forwardBackwardMs(clean: Int32Array, rows, seqLen, metric) -> Promise<number>: one plain forward and
// backward of the metric (the benchmark's reference for an EAP-IG step).
Napi::Value forward_backward_ms(const Napi::CallbackInfo& info, std::shared_ptr<ModelState> state);

}  // namespace neuroprune::binding
