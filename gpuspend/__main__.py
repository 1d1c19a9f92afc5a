from gpuspend.cli import main

main()
