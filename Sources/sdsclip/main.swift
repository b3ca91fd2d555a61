import ArgumentParser
struct SDSClip: ParsableCommand {}
SDSClip.main()
