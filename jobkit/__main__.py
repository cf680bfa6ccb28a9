from jobkit.cli import main

main()
