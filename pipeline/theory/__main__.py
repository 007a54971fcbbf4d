from pipeline.stages.theory import main

main()
