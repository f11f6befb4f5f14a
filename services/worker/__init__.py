"""Worker process: runs UseCaseRelease workflows and the activities behind them."""
