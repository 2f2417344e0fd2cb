"""One class per way of estimating (embedded MediaPipe hands, learned networks) behind small protocols."""
