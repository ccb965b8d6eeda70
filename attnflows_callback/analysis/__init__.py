"""Pure numpy/scipy analysis of attention: rollout, flow, trace, head metrics, change measures."""
