from services.settlement.app import main

main()
