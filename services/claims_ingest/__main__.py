from services.claims_ingest.app import main

main()
