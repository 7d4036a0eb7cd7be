from services.contracts.app import main

main()
