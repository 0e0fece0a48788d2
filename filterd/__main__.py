from filterd.cli import main

main()
