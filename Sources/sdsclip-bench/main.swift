print("sdsclip-bench: not built yet")
