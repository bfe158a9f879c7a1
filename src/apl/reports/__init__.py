"""Reports: run summaries, sweep tables and the paper's figures, from run stores."""
